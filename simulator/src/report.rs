//! The HTML report of one run: a single self-contained file (inline SVG
//! and CSS, no script, nothing fetched) that shows what happened when.
//!
//! - a timeline with each fault's period shaded (partitions, crashes,
//!   pauses, loss, skew) and the operator events as marks;
//! - a lane per lease scope, coloured by holder and epoch;
//! - a lane per agent, coloured by how the others see it (alive, suspected
//!   by some, declared dead or left by some), with its remediation actions
//!   and release changes marked;
//! - plots: the fraction of agents running the latest config release over
//!   time, each crash's detection time against its bound, fleet traffic
//!   over time and bytes sent per agent.
//!
//! Every shape has a `<title>`, so hovering tells the exact numbers.

use crate::checkers::lease::HolderChange;
use crate::outcome::Outcome;
use crate::scenario::Scenario;
use crate::scenario::fault::kind::Period;
use crate::timeline::{MemberChange, Timeline};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// Most agent lanes drawn; a larger fleet's report says how many it left
/// out.
pub const LANES_MAX: usize = 120;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 250.0;
const RIGHT: f64 = 20.0;
const ROW: f64 = 14.0;

/// The report of `outcome`, a run of `scenario` at `seed`, as one HTML
/// document. `outcome` must have been run with
/// [`crate::RunOptions::timeline`]; without it the lanes and plots that
/// need it say so.
pub fn html(scenario: &Scenario, seed: u64, outcome: &Outcome) -> String {
    let end = outcome.simulated.max(Duration::from_millis(1));
    let axis = Axis {
        end: end.as_secs_f64(),
    };
    let mut page = String::new();
    let verdict = if outcome.violations.is_empty() {
        "<span class=\"ok\">every invariant held</span>".to_owned()
    } else {
        format!(
            "<span class=\"bad\">{} invariant violation(s)</span>",
            outcome.violations.len()
        )
    };
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>fleetmesh run: {name} seed {seed}</title><style>{STYLE}</style></head><body>\
         <h1>{name}, seed {seed}</h1><p class=\"what\">{description}</p>\
         <p>{agents} agents, {simulated:.1} s simulated, {events} events, trace hash <code>{hash}</code>: {verdict}</p>",
        name = escape(&scenario.name),
        description = escape(&scenario.description),
        agents = outcome.agents,
        simulated = outcome.simulated.as_secs_f64(),
        events = outcome.events,
        hash = escape(&outcome.trace_hash),
    );
    if !outcome.violations.is_empty() {
        page += "<ul class=\"violations\">";
        for violation in &outcome.violations {
            let _ = write!(page, "<li>{}</li>", escape(&violation.to_string()));
        }
        page += "</ul>";
    }
    page += "<h2>Timeline</h2>";
    page += &timeline_svg(scenario, outcome, &axis);
    page += "<h2>Plots</h2><div class=\"plots\">";
    match &outcome.timeline {
        Some(timeline) => {
            page += &convergence_svg(timeline, outcome.agents, &axis);
            page += &detection_svg(outcome);
            page += &traffic_svg(timeline, &axis);
            page += &sent_svg(timeline, axis.end);
            let capped = outcome
                .leases
                .iter()
                .any(|lease| lease.holders.len() >= crate::checkers::lease::HOLDER_CHANGES_MAX);
            if capped {
                page += "<p class=\"bad\">A lease scope changed holders more often than the lanes keep: its lane ends early.</p>";
            }
            if timeline.truncated {
                page +=
                    "<p class=\"bad\">Some event lists reached their cap: the lanes end early.</p>";
            }
        }
        None => page += "<p>This run did not gather a timeline.</p>",
    }
    page += "</div></body></html>\n";
    page
}

const STYLE: &str = "body{font:13px sans-serif;margin:16px;color:#222}\
h1{font-size:20px}h2{font-size:16px;margin-top:24px}.ok{color:#1a7f37}.bad{color:#c62828}\
.what{color:#555}svg{display:block;margin:6px 0}text{font:11px sans-serif;fill:#333}\
.plots svg{display:inline-block;margin-right:16px;vertical-align:top}\
.fault rect{fill-opacity:.55}.partition{fill:#8e44ad}.crash{fill:#c62828}.pause{fill:#ef6c00}\
.network{fill:#1565c0}.clock{fill:#00838f}.flaps{fill:#6d4c41}.mark{fill:#555}\
.alive{fill:#c8e6c9}.suspect{fill:#ffb300}.dead{fill:#e53935}.left{fill:#9e9e9e}\
.vacant{fill:#eeeeee}.clash{fill:#b71c1c}.line{fill:none;stroke:#1565c0;stroke-width:1.5}\
.bound{stroke:#c62828;stroke-dasharray:4 3}.grid{stroke:#ddd}";

/// Maps simulated seconds to x positions.
struct Axis {
    end: f64,
}

impl Axis {
    fn x(&self, seconds: f64) -> f64 {
        LEFT + (seconds / self.end).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn span(&self, from: f64, to: f64) -> (f64, f64) {
        let x = self.x(from);
        (x, (self.x(to) - x).max(2.0))
    }

    /// Tick marks and labels along the top of a lane block.
    fn ticks(&self, svg: &mut String, top: f64, height: f64) {
        let step = nice_step(self.end / 10.0);
        let mut t = 0.0;
        while t <= self.end + 1e-9 {
            let x = self.x(t);
            let _ = write!(
                svg,
                "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{top:.1}\" y2=\"{:.1}\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.0}s</text>",
                top + height,
                top - 3.0
            );
            t += step;
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.max(1e-3).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn timeline_svg(scenario: &Scenario, outcome: &Outcome, axis: &Axis) -> String {
    let mut rows = String::new();
    let mut y = 20.0;
    rows += &section_label("faults", y);
    y += ROW;
    for fault in &scenario.faults {
        let Period {
            from: start,
            until: stop,
            class,
            label,
        } = fault.kind().period(axis.end);
        let (x, width) = axis.span(start, stop);
        let _ = write!(
            rows,
            "<g class=\"fault\"><text x=\"4\" y=\"{:.1}\">{}</text>\
             <rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\">\
             <title>{} from {start:.2}s to {stop:.2}s</title></rect></g>",
            y + ROW - 3.0,
            escape(&label),
            ROW - 2.0,
            escape(&label),
        );
        y += ROW;
    }
    y += ROW;
    rows += &section_label("lease holders", y);
    y += ROW;
    if outcome.leases.is_empty() {
        rows += &note("no lease scopes in this run", y);
        y += ROW;
    }
    for lease in &outcome.leases {
        rows += &lease_lane(&lease.scope, &lease.holders, axis, y);
        y += ROW;
    }
    y += ROW;
    rows += &section_label("agents (as the others see them)", y);
    y += ROW;
    match &outcome.timeline {
        Some(timeline) => {
            let lanes = agent_lanes(timeline, outcome.agents, axis, y);
            y += ROW * lanes.count as f64;
            rows += &lanes.svg;
            if lanes.count < outcome.agents {
                rows += &note(
                    &format!(
                        "{} more agents not drawn (at most {LANES_MAX} lanes)",
                        outcome.agents - lanes.count
                    ),
                    y + ROW - 3.0,
                );
                y += ROW;
            }
        }
        None => {
            rows += &note("this run did not gather a timeline", y);
            y += ROW;
        }
    }
    let height = y + ROW;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" class=\"timeline\">"
    );
    axis.ticks(&mut svg, 14.0, height - 14.0);
    svg += &rows;
    svg += "</svg>";
    svg
}

fn section_label(text: &str, y: f64) -> String {
    format!(
        "<text x=\"4\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
        y + ROW - 3.0,
        escape(text)
    )
}

fn note(text: &str, y: f64) -> String {
    format!(
        "<text x=\"{LEFT}\" y=\"{:.1}\">{}</text>",
        y + ROW - 3.0,
        escape(text)
    )
}

fn hue(agent: u32) -> u32 {
    agent.wrapping_mul(47) % 360
}

fn lease_lane(scope: &str, changes: &[HolderChange], axis: &Axis, y: f64) -> String {
    let mut lane = format!(
        "<g class=\"lease\"><text x=\"4\" y=\"{:.1}\">{}</text><rect class=\"vacant\" x=\"{LEFT}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
        y + ROW - 3.0,
        escape(scope),
        WIDTH - LEFT - RIGHT,
        ROW - 2.0
    );
    for (index, (at, holders)) in changes.iter().enumerate() {
        if holders.is_empty() {
            continue;
        }
        let start = *at as f64 / 1e9;
        let stop = changes
            .get(index + 1)
            .map_or(axis.end, |(next, _)| *next as f64 / 1e9);
        let (x, width) = axis.span(start, stop);
        let names: Vec<String> = holders
            .iter()
            .map(|(agent, epoch)| format!("agent {agent} epoch {epoch}"))
            .collect();
        let fill = match holders.as_slice() {
            [(agent, _)] => format!("hsl({} 60% 55%)", hue(*agent)),
            _ => "#b71c1c".into(),
        };
        let _ = write!(
            lane,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\" style=\"fill:{fill}\"><title>{}: {start:.2}s to {stop:.2}s</title></rect>",
            ROW - 2.0,
            names.join(", ")
        );
        if width > 60.0 {
            let (agent, epoch) = holders[0];
            let _ = write!(
                lane,
                "<text x=\"{:.1}\" y=\"{:.1}\">a{agent} e{epoch}</text>",
                x + 2.0,
                y + ROW - 4.0
            );
        }
    }
    lane += "</g>";
    lane
}

struct Lanes {
    svg: String,
    count: usize,
}

/// How the fleet sees one agent: the worst state any observer holds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Seen {
    Alive,
    Suspect,
    Dead,
    Left,
}

impl Seen {
    fn class(self) -> &'static str {
        match self {
            Seen::Alive => "alive",
            Seen::Suspect => "suspect",
            Seen::Dead => "dead",
            Seen::Left => "left",
        }
    }
}

fn agent_lanes(timeline: &Timeline, agents: usize, axis: &Axis, top: f64) -> Lanes {
    let count = agents.min(LANES_MAX);
    let segments = seen_segments(&timeline.members, count, axis.end);
    let mut svg = String::new();
    for (agent, spans) in segments.iter().enumerate() {
        let y = top + ROW * agent as f64;
        let _ = write!(
            svg,
            "<g class=\"lane\"><text x=\"4\" y=\"{:.1}\">agent {agent}</text>",
            y + ROW - 3.0
        );
        for (start, stop, seen) in spans {
            let (x, width) = axis.span(*start, *stop);
            let _ = write!(
                svg,
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{:.1}\"><title>agent {agent} {} from {start:.2}s to {stop:.2}s</title></rect>",
                seen.class(),
                ROW - 2.0,
                seen.class()
            );
        }
        svg += "</g>";
    }
    for &(at, agent, version) in &timeline.releases {
        let Some(y) = lane_y(agent, count, top) else {
            continue;
        };
        let x = axis.x(at as f64 / 1e9);
        let _ = write!(
            svg,
            "<rect class=\"mark\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"1.5\" height=\"{:.1}\"><title>agent {agent} runs release {version} from {:.2}s</title></rect>",
            ROW - 2.0,
            at as f64 / 1e9
        );
    }
    for &(at, agent, phase) in &timeline.actions {
        let Some(y) = lane_y(agent, count, top) else {
            continue;
        };
        let x = axis.x(at as f64 / 1e9);
        let (fill, what) = match phase {
            0 => ("#1565c0", "local action started"),
            1 => ("#6a1b9a", "disruptive action started"),
            2 => ("#1a7f37", "action succeeded"),
            _ => ("#c62828", "action killed at its timeout"),
        };
        let _ = write!(
            svg,
            "<path d=\"M{x:.1} {:.1} l4 -{:.1} l-8 0 z\" style=\"fill:{fill}\"><title>agent {agent}: {what} at {:.2}s</title></path>",
            y + ROW - 2.0,
            ROW - 4.0,
            at as f64 / 1e9
        );
    }
    Lanes { svg, count }
}

fn lane_y(agent: u32, count: usize, top: f64) -> Option<f64> {
    let agent = agent as usize;
    (agent < count).then_some(top + ROW * agent as f64)
}

/// For each of the first `count` agents, the spans (start, end seconds)
/// of how the others see it.
fn seen_segments(members: &[MemberChange], count: usize, end: f64) -> Vec<Vec<(f64, f64, Seen)>> {
    let mut views: BTreeMap<(u32, u32), u8> = BTreeMap::new();
    // Per member: observers holding it suspect, dead, left.
    let mut tallies = vec![[0u32; 3]; count];
    let mut current = vec![(0.0, Seen::Alive); count];
    let mut spans: Vec<Vec<(f64, f64, Seen)>> = vec![Vec::new(); count];
    for &(at, observer, member, state) in members {
        let index = member as usize;
        if index >= count || observer == member {
            continue;
        }
        let old = views.insert((observer, member), state);
        let tally = &mut tallies[index];
        for (code, change) in [(old, -1i64), (Some(state), 1)] {
            if let Some(slot) = code.and_then(|code| match code {
                1 => Some(0),
                2 => Some(1),
                3 => Some(2),
                _ => None,
            }) {
                tally[slot] = u32::try_from(i64::from(tally[slot]) + change).unwrap_or(0);
            }
        }
        let seen = if tally[2] > 0 {
            Seen::Left
        } else if tally[1] > 0 {
            Seen::Dead
        } else if tally[0] > 0 {
            Seen::Suspect
        } else {
            Seen::Alive
        };
        let t = at as f64 / 1e9;
        let (since, was) = current[index];
        if seen != was {
            spans[index].push((since, t, was));
            current[index] = (t, seen);
        }
    }
    for (index, (since, was)) in current.into_iter().enumerate() {
        spans[index].push((since, end, was));
    }
    spans
}

fn plot_frame(title: &str, width: f64, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" class=\"plot\">\
         <text x=\"4\" y=\"14\" font-weight=\"bold\">{}</text>\
         <line class=\"grid\" x1=\"40\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
         <line class=\"grid\" x1=\"40\" y1=\"24\" x2=\"40\" y2=\"{:.1}\"/>",
        escape(title),
        height - 20.0,
        width - 10.0,
        height - 20.0,
        height - 20.0
    )
}

const PLOT_W: f64 = 380.0;
const PLOT_H: f64 = 200.0;

fn plot_x(t: f64, end: f64) -> f64 {
    40.0 + (t / end.max(1e-9)).clamp(0.0, 1.0) * (PLOT_W - 50.0)
}

fn plot_y(value: f64, max: f64) -> f64 {
    (PLOT_H - 20.0) - (value / max.max(1e-9)).clamp(0.0, 1.0) * (PLOT_H - 44.0)
}

fn convergence_svg(timeline: &Timeline, agents: usize, axis: &Axis) -> String {
    let mut svg = plot_frame("agents on the latest config release", PLOT_W, PLOT_H);
    if timeline.releases.is_empty() {
        svg += "<text x=\"50\" y=\"100\">no config release in this run</text></svg>";
        return svg;
    }
    let mut running: BTreeMap<u32, u32> = BTreeMap::new();
    // Agents per version, so each event costs a lookup, not a scan.
    let mut on: BTreeMap<u32, usize> = BTreeMap::new();
    let mut points = vec![(0.0, 0.0)];
    for &(at, agent, version) in &timeline.releases {
        if let Some(old) = running.insert(agent, version)
            && let Some(count) = on.get_mut(&old)
        {
            *count -= 1;
        }
        *on.entry(version).or_default() += 1;
        let on_latest = on.values().next_back().copied().unwrap_or(0);
        let fraction = on_latest as f64 / agents.max(1) as f64;
        points.push((at as f64 / 1e9, fraction));
    }
    let last = points.last().map_or(0.0, |point| point.1);
    points.push((axis.end, last));
    let path: Vec<String> = points
        .iter()
        .map(|(t, fraction)| format!("{:.1},{:.1}", plot_x(*t, axis.end), plot_y(*fraction, 1.0)))
        .collect();
    let _ = write!(
        svg,
        "<polyline class=\"line\" points=\"{}\"><title>fraction of agents running the highest release version seen so far</title></polyline>\
         <text x=\"4\" y=\"{:.1}\">100%</text><text x=\"4\" y=\"{:.1}\">0</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}s</text></svg>",
        path.join(" "),
        plot_y(1.0, 1.0) + 4.0,
        plot_y(0.0, 1.0),
        PLOT_W - 10.0,
        PLOT_H - 6.0,
        axis.end
    );
    svg
}

fn detection_svg(outcome: &Outcome) -> String {
    let mut svg = plot_frame("crash detection times (s)", PLOT_W, PLOT_H);
    let times: Vec<f64> = outcome
        .detection_times
        .iter()
        .map(|t| *t as f64 / 1e9)
        .collect();
    if times.is_empty() {
        svg += "<text x=\"50\" y=\"100\">no crash was detected in this run</text></svg>";
        return svg;
    }
    let bound = outcome.detect_bound.as_secs_f64();
    let max = times.iter().copied().fold(bound, f64::max) * 1.1;
    bars(&mut svg, &times, max, "crash", |index, time| {
        format!(
            "crash {}: declared down by every running agent after {time:.2}s",
            index + 1
        )
    });
    let y = plot_y(bound, max);
    let _ = write!(
        svg,
        "<line class=\"bound\" x1=\"40\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"><title>bound {bound:.1}s</title></line>\
         <text x=\"4\" y=\"{:.1}\">{bound:.0}s</text></svg>",
        PLOT_W - 10.0,
        y + 4.0
    );
    svg
}

fn traffic_svg(timeline: &Timeline, axis: &Axis) -> String {
    let mut svg = plot_frame("fleet traffic (bytes/s)", PLOT_W, PLOT_H);
    let bucket_s = timeline.bucket as f64 / 1e9;
    let rates: Vec<f64> = timeline
        .traffic
        .iter()
        .map(|bytes| *bytes as f64 / bucket_s)
        .collect();
    let max = rates.iter().copied().fold(1.0, f64::max);
    let points: Vec<String> = rates
        .iter()
        .enumerate()
        .filter(|(index, _)| (*index as f64) * bucket_s <= axis.end)
        .map(|(index, rate)| {
            format!(
                "{:.1},{:.1}",
                plot_x(index as f64 * bucket_s, axis.end),
                plot_y(*rate, max)
            )
        })
        .collect();
    let _ = write!(
        svg,
        "<polyline class=\"line\" points=\"{}\"/><text x=\"4\" y=\"{:.1}\">{}</text></svg>",
        points.join(" "),
        plot_y(max, max) + 4.0,
        human(max)
    );
    svg
}

fn sent_svg(timeline: &Timeline, seconds: f64) -> String {
    let mut svg = plot_frame("bytes/s sent per agent", PLOT_W, PLOT_H);
    let rates: Vec<f64> = timeline
        .sent
        .iter()
        .map(|bytes| *bytes as f64 / seconds.max(1e-9))
        .collect();
    let max = rates.iter().copied().fold(1.0, f64::max);
    bars(&mut svg, &rates, max, "network", |agent, rate| {
        format!("agent {agent}: {rate:.0} B/s")
    });
    let _ = write!(
        svg,
        "<text x=\"4\" y=\"{:.1}\">{}</text></svg>",
        plot_y(max, max) + 4.0,
        human(max)
    );
    svg
}

/// A bar per value, side by side across the plot, scaled to `max`, each
/// with the tooltip `title(index, value)`.
fn bars(
    svg: &mut String,
    values: &[f64],
    max: f64,
    class: &str,
    title: impl Fn(usize, f64) -> String,
) {
    let width = (PLOT_W - 50.0) / values.len().max(1) as f64;
    for (index, value) in values.iter().enumerate() {
        let x = 40.0 + width * index as f64;
        let y = plot_y(*value, max);
        let _ = write!(
            svg,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{:.1}\"><title>{}</title></rect>",
            (width - 1.0).max(0.5),
            (PLOT_H - 20.0) - y,
            escape(&title(index, *value))
        );
    }
}

fn human(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// `text` with the characters HTML gives meaning to escaped.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped += "&amp;",
            '<' => escaped += "&lt;",
            '>' => escaped += "&gt;",
            '"' => escaped += "&quot;",
            '\'' => escaped += "&#39;",
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_the_fleet_sees_an_agent_is_the_worst_view_held() {
        let members = [
            (1_000_000_000, 1, 0, 1),
            (2_000_000_000, 2, 0, 2),
            (3_000_000_000, 2, 0, 0),
            (4_000_000_000, 1, 0, 0),
        ];
        let spans = seen_segments(&members, 1, 5.0);
        assert_eq!(
            spans[0],
            vec![
                (0.0, 1.0, Seen::Alive),
                (1.0, 2.0, Seen::Suspect),
                (2.0, 3.0, Seen::Dead),
                (3.0, 4.0, Seen::Suspect),
                (4.0, 5.0, Seen::Alive),
            ]
        );
    }

    #[test]
    fn names_from_scenario_files_cannot_inject_markup() {
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
