//! The `[network]` section: the default link model and the per-link
//! `[[network.links]]` overrides; the link fields a `network` fault sets
//! are read the same way.

use crate::network::LinkModel;
use crate::scenario::context::{Context, ScenarioError, probability};
use crate::scenario::fleet::{Fleet, Nodes, NodesFile, nodes};
use serde::Deserialize;
use std::ops::Range;
use toml::Spanned;

/// A per-link override between two selectors.
#[derive(Clone, Debug)]
pub struct LinkRule {
    /// Senders.
    pub from: Nodes,
    /// Recipients.
    pub to: Nodes,
    /// The link model.
    pub model: LinkModel,
}

/// Link fields as serde reads them: each one set overrides a base model.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkFile {
    latency_min_ms: Option<f64>,
    latency_mean_ms: Option<f64>,
    loss: Option<f64>,
    duplicate: Option<f64>,
    reorder: Option<f64>,
    reorder_ms: Option<f64>,
}

/// The `[network]` table as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkFile {
    #[serde(flatten)]
    link: LinkFile,
    #[serde(default)]
    links: Vec<LinkRuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRuleFile {
    from: NodesFile,
    to: NodesFile,
    #[serde(flatten)]
    link: LinkFile,
}

/// Validates `[network]`: the default link model and the link rules.
pub(crate) fn network(
    context: &Context<'_>,
    network: &Spanned<NetworkFile>,
    fleet: &Fleet,
) -> Result<(LinkModel, Vec<LinkRule>), ScenarioError> {
    let span = network.span();
    let link = link_model(
        context,
        span.clone(),
        "network",
        LinkModel::default(),
        network.get_ref().link,
    )?;
    let mut rules = Vec::new();
    for (index, rule) in network.get_ref().links.iter().enumerate() {
        let field = format!("network.links[{index}]");
        for (end, nodes) in [("from", &rule.from), ("to", &rule.to)] {
            if nodes.count.is_some() || nodes.fraction.is_some() || nodes.exclude_seeds {
                return Err(context.invalid(
                    span.clone(),
                    format!("{field}.{end}"),
                    "a link selects agents by select or ids only (random picks would change per run)",
                ));
            }
        }
        rules.push(LinkRule {
            from: nodes(
                context,
                span.clone(),
                &format!("{field}.from"),
                &rule.from,
                fleet,
            )?,
            to: nodes(
                context,
                span.clone(),
                &format!("{field}.to"),
                &rule.to,
                fleet,
            )?,
            model: link_model(context, span.clone(), &field, link, rule.link)?,
        });
    }
    Ok((link, rules))
}

/// `base` with the fields `file` sets, validated; `field` prefixes the
/// names in errors.
pub(crate) fn link_model(
    context: &Context<'_>,
    span: Range<usize>,
    field: &str,
    base: LinkModel,
    file: LinkFile,
) -> Result<LinkModel, ScenarioError> {
    let mut model = base;
    if let Some(value) = file.latency_min_ms {
        model.latency_min_ms = value;
    }
    if let Some(value) = file.latency_mean_ms {
        model.latency_mean_ms = value;
    }
    let latency_ok = model.latency_min_ms.is_finite()
        && model.latency_min_ms >= 0.0
        && model.latency_mean_ms >= model.latency_min_ms
        && model.latency_mean_ms <= 60_000.0;
    if !latency_ok {
        return Err(context.invalid(
            span,
            format!("{field}.latency_mean_ms"),
            "latencies must satisfy 0 <= min <= mean <= 60000 ms",
        ));
    }
    for (name, value, slot) in [
        ("loss", file.loss, &mut model.loss),
        ("duplicate", file.duplicate, &mut model.duplicate),
        ("reorder", file.reorder, &mut model.reorder),
    ] {
        if let Some(value) = value {
            *slot = probability(context, span.clone(), &format!("{field}.{name}"), value)?;
        }
    }
    if let Some(value) = file.reorder_ms {
        if !(value.is_finite() && (0.0..=60_000.0).contains(&value)) {
            return Err(context.invalid(
                span,
                format!("{field}.reorder_ms"),
                "must be 0 to 60000 ms",
            ));
        }
        model.reorder_ms = value;
    }
    Ok(model)
}
