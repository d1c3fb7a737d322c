//! `fleetmesh members`: the member table of a running agent, filtered by
//! tags and state (as `serf members -tag -status` does), in a short form
//! or with `--detailed` columns.

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::table::{cell, list, print_json, tags_cell};
use super::views::View;
use super::{Client, Target};

/// The most `--tag` filters one command takes: more than any tag set a
/// certificate may hold.
const TAG_FILTERS_MAX: usize = 32;

/// A member's state, as the admin API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum State {
    /// Answers probes.
    Alive,
    /// Missed probes; dead unless it refutes in time.
    Suspect,
    /// Declared dead by the fleet.
    Dead,
    /// Left the fleet gracefully.
    Left,
}

impl State {
    /// The admin API's name of the state.
    fn name(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Suspect => "suspect",
            State::Dead => "dead",
            State::Left => "left",
        }
    }
}

/// `fleetmesh members`' arguments.
#[derive(Args, Clone, Debug)]
pub struct MembersArgs {
    /// The agent, and `--json`.
    #[command(flatten)]
    pub target: Target,
    /// Only members with this tag; repeat to require several (all must
    /// match). Filters the JSON too.
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Only members in this state. Filters the JSON too.
    #[arg(long, value_enum)]
    pub state: Option<State>,
    /// Adds the INCARNATION, TAGS and ADDRESSES columns.
    #[arg(long)]
    pub detailed: bool,
}

impl MembersArgs {
    /// Whether `member` (one item of `/v1/members`) passes the filters.
    fn admits(&self, member: &Value) -> bool {
        let state = self
            .state
            .is_none_or(|state| member["state"].as_str() == Some(state.name()));
        state
            && self
                .tags
                .iter()
                .all(|(key, value)| member["tags"][key].as_str() == Some(value))
    }
}

/// Parses one `--tag KEY=VALUE`.
fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "`{text}` is not KEY=VALUE: write e.g. --tag zone=a"
        )),
    }
}

/// `fleetmesh members`.
pub fn members(args: &MembersArgs) -> anyhow::Result<()> {
    if args.tags.len() > TAG_FILTERS_MAX {
        anyhow::bail!("at most {TAG_FILTERS_MAX} --tag filters: a member holds fewer tags");
    }
    let short = ["NAME", "ID", "STATE", "CONNECTED"];
    let detailed = [
        "NAME",
        "ID",
        "STATE",
        "CONNECTED",
        "INCARNATION",
        "TAGS",
        "ADDRESSES",
    ];
    let view = View {
        path: "/v1/members",
        key: "members",
        titles: if args.detailed { &detailed } else { &short },
        empty: "no members: the agent lists none, not even itself",
    };
    let mut answer = Client::new(&args.target.agent)?.get(view.path)?;
    let filtering = args.state.is_some() || !args.tags.is_empty();
    if let Some(members) = answer["members"].as_array_mut() {
        members.retain(|member| args.admits(member));
    }
    if args.target.json {
        return print_json(&answer);
    }
    if filtering && list(&answer, "members").is_empty() {
        println!("no members match the filters");
        return Ok(());
    }
    view.print(&answer, |member| row(member, args.detailed));
    Ok(())
}

/// A member's cells: the short columns, then the detailed ones.
fn row(member: &Value, detailed: bool) -> Vec<String> {
    let link = if member["self"] == true {
        "self"
    } else if member["connected"] == true {
        "yes"
    } else {
        "no"
    };
    let mut cells = vec![
        cell(&member["name"]),
        cell(&member["id"]),
        cell(&member["state"]),
        link.to_owned(),
    ];
    if detailed {
        cells.extend([
            cell(&member["incarnation"]),
            tags_cell(&member["tags"]),
            list(member, "addrs")
                .iter()
                .map(cell)
                .collect::<Vec<_>>()
                .join(","),
        ]);
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    /// `fleetmesh members` with `args`, parsed as the command line is.
    #[derive(Parser)]
    struct Line {
        #[command(flatten)]
        args: MembersArgs,
    }

    fn parse(args: &[&str]) -> MembersArgs {
        Line::try_parse_from([&["members"][..], args].concat())
            .expect("valid arguments")
            .args
    }

    #[test]
    fn filters_require_the_state_and_every_tag_given() {
        let web_a = json!({ "state": "alive", "tags": { "role": "web", "zone": "a" } });
        let web_b = json!({ "state": "suspect", "tags": { "role": "web", "zone": "b" } });
        let bare = json!({ "state": "alive", "tags": {} });
        let all = parse(&[]);
        assert!(all.admits(&web_a) && all.admits(&web_b) && all.admits(&bare));
        let web = parse(&["--tag", "role=web"]);
        assert!(web.admits(&web_a) && web.admits(&web_b) && !web.admits(&bare));
        let web_in_a = parse(&["--tag", "role=web", "--tag", "zone=a"]);
        assert!(web_in_a.admits(&web_a) && !web_in_a.admits(&web_b));
        let suspect = parse(&["--state", "suspect"]);
        assert!(!suspect.admits(&web_a) && suspect.admits(&web_b));
        let alive_web = parse(&["--state", "alive", "--tag", "role=web"]);
        assert!(alive_web.admits(&web_a) && !alive_web.admits(&web_b));
        assert!(!alive_web.admits(&bare));
    }

    #[test]
    fn a_tag_without_a_key_or_an_unknown_state_is_a_usage_error() {
        for args in [
            &["--tag", "web"][..],
            &["--tag", "=web"],
            &["--state", "gone"],
        ] {
            assert!(
                Line::try_parse_from([&["members"][..], args].concat()).is_err(),
                "{args:?}"
            );
        }
        assert_eq!(
            parse(&["--tag", "k=a=b"]).tags,
            [("k".into(), "a=b".into())]
        );
    }

    #[test]
    fn detailed_rows_add_incarnation_tags_and_addresses() {
        let member = json!({
            "name": "node-1", "id": "00ff", "state": "alive", "connected": true,
            "incarnation": 3, "tags": { "zone": "a" }, "addrs": ["/ip4/10.0.0.1/udp/7946/quic-v1"],
        });
        assert_eq!(row(&member, false), ["node-1", "00ff", "alive", "yes"]);
        assert_eq!(
            row(&member, true),
            [
                "node-1",
                "00ff",
                "alive",
                "yes",
                "3",
                "zone=a",
                "/ip4/10.0.0.1/udp/7946/quic-v1"
            ]
        );
    }
}
