//! Selectors over tags, as operators write them: `key=value[,key=value]`.
//! One parser for rollout waves, emergency stops and the simulator's
//! scenarios, so a selector means the same wherever it is written.

use std::collections::BTreeMap;

/// Parses `key=value[,key=value]`, trimming spaces; empty text (or only
/// commas) selects everything. Refuses a term that is not `key=value` or
/// names no key or no value, saying which.
pub fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut selector = BTreeMap::new();
    for pair in text
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(format!("selector term `{pair}` is not key=value"));
        };
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty() || value.is_empty() {
            return Err(format!("selector term `{pair}` names no key or no value"));
        }
        selector.insert(key.to_owned(), value.to_owned());
    }
    Ok(selector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_key_value_pairs_and_nothing_else() {
        let selector = parse_selector(" zone=a, role = web ,").unwrap();
        assert_eq!(selector.len(), 2);
        assert_eq!(selector["role"], "web");
        assert!(parse_selector("").unwrap().is_empty(), "empty selects all");
        assert!(parse_selector("zone").unwrap_err().contains("`zone`"));
        assert!(parse_selector("zone=").is_err());
        assert!(parse_selector("=a").is_err());
    }
}
