//! The staffing chart: service level against agents, as a self-contained SVG document.
//!
//! Pure: figures in, SVG text out; writing the file is the caller's business. The
//! document is hand-written SVG (no scripts, no styles or fonts from elsewhere), and
//! every piece of text in it (the title, the labels) is XML-escaped, so a title holding
//! `<` or `&` stays text.

use serde::{Deserialize, Serialize};

/// One agent count on a [`StaffingChart`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChartPoint {
    /// The number of agents (the x axis).
    pub agents: u32,
    /// The service level the formula predicts, from 0 to 1; `None` for none.
    pub analytic: Option<f64>,
    /// The service level the planner measured, from 0 to 1; `None` for none.
    pub simulated: Option<f64>,
}

/// What a staffing chart shows: service level (y, 0–100 %) against agents (x), the
/// formula's curve as a line and the simulated points as markers.
///
/// [`Staffing::chart`](super::Staffing::chart) makes one from a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffingChart {
    /// The title above the chart (plain text, escaped when drawn).
    pub title: String,
    /// The service-level threshold, seconds, named on the y axis.
    pub service_level_secs: f64,
    /// The legend's name for the curve (e.g. `Erlang C`); `None` draws no curve.
    pub analytic_label: Option<String>,
    /// The target service level, from 0 to 1, drawn as a dashed horizontal line.
    pub target: Option<f64>,
    /// The points, in any order (they are drawn by number of agents).
    pub points: Vec<ChartPoint>,
}

/// The size of the whole picture, in SVG user units (pixels).
const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 460.0;
/// The plot area, where 0–100 % and the agents swept map to.
const PLOT_LEFT: f64 = 70.0;
const PLOT_TOP: f64 = 60.0;
const PLOT_WIDTH: f64 = 520.0;
const PLOT_HEIGHT: f64 = 320.0;
/// Where the legend starts, right of the plot area.
const LEGEND_LEFT: f64 = PLOT_LEFT + PLOT_WIDTH + 20.0;

const ANALYTIC_COLOUR: &str = "#1f77b4";
const SIMULATED_COLOUR: &str = "#d62728";
const TARGET_COLOUR: &str = "#2ca02c";

impl StaffingChart {
    /// The chart as a standalone SVG document.
    ///
    /// The x axis runs over the agents of the points, half the smallest gap between two
    /// counts beyond each end, with whole-number ticks; the y axis from 0 to 100 % with
    /// a tick and a grid line every 10 %. Values outside 0–1 are drawn at the nearest
    /// edge; values that are not finite are left out. Each simulated point is a `circle`
    /// of class `simulated` with its agent count in `data-agents` and a tooltip; the
    /// curve is a `polyline` of class `analytic` (one per run of consecutive points that
    /// have a value); the target a dashed `line` of class `target`.
    ///
    /// ```
    /// use opencti_sim::planner::{ChartPoint, StaffingChart};
    /// let chart = StaffingChart {
    ///     title: "480 calls/h, handle time 60 s".to_owned(),
    ///     service_level_secs: 20.0,
    ///     analytic_label: Some("Erlang C".to_owned()),
    ///     target: Some(0.8),
    ///     points: vec![
    ///         ChartPoint { agents: 9, analytic: Some(0.62), simulated: Some(0.60) },
    ///         ChartPoint { agents: 10, analytic: Some(0.79), simulated: Some(0.80) },
    ///     ],
    /// };
    /// let svg = chart.to_svg();
    /// assert!(svg.contains("<svg "));
    /// assert_eq!(svg.matches("<circle class=\"simulated\"").count(), 2);
    /// ```
    pub fn to_svg(&self) -> String {
        let mut points: Vec<ChartPoint> = self.points.clone();
        points.sort_by_key(|p| p.agents);
        let x = XScale::over(&points);
        let mut svg = String::with_capacity(8_192);
        svg.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        svg.push_str(&format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n"
        ));
        let title = escape(&self.title);
        svg.push_str(&format!("<title>{title}</title>\n"));
        svg.push_str(&format!(
            "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n"
        ));
        svg.push_str(&format!(
            "<text class=\"title\" x=\"{:.1}\" y=\"30\" text-anchor=\"middle\" font-size=\"15\">{title}</text>\n",
            WIDTH / 2.0
        ));
        self.y_axis(&mut svg);
        x.axis(&mut svg);
        svg.push_str(&format!(
            "<rect class=\"plot-area\" x=\"{PLOT_LEFT}\" y=\"{PLOT_TOP}\" width=\"{PLOT_WIDTH}\" height=\"{PLOT_HEIGHT}\" fill=\"none\" stroke=\"#333\"/>\n"
        ));
        if let Some(target) = self.target.filter(|t| t.is_finite()) {
            let y = y_of(target);
            svg.push_str(&format!(
                "<line class=\"target\" x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{TARGET_COLOUR}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                PLOT_LEFT + PLOT_WIDTH
            ));
        }
        if self.analytic_label.is_some() {
            self.curve(&mut svg, &points, &x);
        }
        self.markers(&mut svg, &points, &x);
        self.legend(&mut svg, &points);
        svg.push_str("</svg>\n");
        svg
    }

    /// Grid lines, ticks and labels every 10 %, and the axis title.
    fn y_axis(&self, svg: &mut String) {
        svg.push_str("<g class=\"y-axis\">\n");
        for tenth in 0..=10 {
            let y = y_of(f64::from(tenth) / 10.0);
            svg.push_str(&format!(
                "<line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n",
                PLOT_LEFT + PLOT_WIDTH
            ));
            svg.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{PLOT_LEFT}\" y2=\"{y:.1}\" stroke=\"#333\"/>\n",
                PLOT_LEFT - 5.0
            ));
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} %</text>\n",
                PLOT_LEFT - 8.0,
                y + 4.0,
                tenth * 10
            ));
        }
        let middle = PLOT_TOP + PLOT_HEIGHT / 2.0;
        svg.push_str(&format!(
            "<text class=\"axis-label\" x=\"18\" y=\"{middle:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {middle:.1})\">{}</text>\n",
            escape(&format!(
                "service level (answered within {} s, of offered)",
                self.service_level_secs
            ))
        ));
        svg.push_str("</g>\n");
    }

    /// The formula's curve: a polyline through each run of consecutive points that have
    /// a value (a lone point is a dot).
    fn curve(&self, svg: &mut String, points: &[ChartPoint], x: &XScale) {
        let runs = points
            .split(|p| !p.analytic.is_some_and(f64::is_finite))
            .filter(|run| !run.is_empty());
        for run in runs {
            let level = |p: &ChartPoint| p.analytic.unwrap_or(0.0);
            if let [only] = run {
                svg.push_str(&format!(
                    "<circle class=\"analytic\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{ANALYTIC_COLOUR}\"/>\n",
                    x.of(only.agents),
                    y_of(level(only))
                ));
                continue;
            }
            let coordinates: Vec<String> = run
                .iter()
                .map(|p| format!("{:.1},{:.1}", x.of(p.agents), y_of(level(p))))
                .collect();
            svg.push_str(&format!(
                "<polyline class=\"analytic\" points=\"{}\" fill=\"none\" stroke=\"{ANALYTIC_COLOUR}\" stroke-width=\"2\"/>\n",
                coordinates.join(" ")
            ));
        }
    }

    /// A marker per simulated point, with a tooltip giving its figures.
    fn markers(&self, svg: &mut String, points: &[ChartPoint], x: &XScale) {
        for point in points {
            let Some(level) = point.simulated.filter(|l| l.is_finite()) else {
                continue;
            };
            let mut tooltip = format!("{} agents: simulated {}", point.agents, percent(level));
            if let (Some(label), Some(analytic)) = (&self.analytic_label, point.analytic) {
                tooltip.push_str(&format!(", {label} {}", percent(analytic)));
            }
            svg.push_str(&format!(
                "<circle class=\"simulated\" data-agents=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{SIMULATED_COLOUR}\"><title>{}</title></circle>\n",
                point.agents,
                x.of(point.agents),
                y_of(level),
                escape(&tooltip)
            ));
        }
    }

    /// What the line, the markers and the dashed line are, right of the plot area.
    fn legend(&self, svg: &mut String, points: &[ChartPoint]) {
        svg.push_str("<g class=\"legend\">\n");
        let mut y = PLOT_TOP + 10.0;
        let swatch = LEGEND_LEFT;
        let text = LEGEND_LEFT + 30.0;
        if let Some(label) = &self.analytic_label {
            if points.iter().any(|p| p.analytic.is_some()) {
                svg.push_str(&format!(
                    "<line x1=\"{swatch:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{ANALYTIC_COLOUR}\" stroke-width=\"2\"/>\n",
                    swatch + 22.0
                ));
                svg.push_str(&format!(
                    "<text x=\"{text:.1}\" y=\"{:.1}\">{}</text>\n",
                    y + 4.0,
                    escape(label)
                ));
                y += 22.0;
            }
        }
        if points.iter().any(|p| p.simulated.is_some()) {
            svg.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{SIMULATED_COLOUR}\"/>\n",
                swatch + 11.0
            ));
            svg.push_str(&format!(
                "<text x=\"{text:.1}\" y=\"{:.1}\">simulated</text>\n",
                y + 4.0
            ));
            y += 22.0;
        }
        if let Some(target) = self.target.filter(|t| t.is_finite()) {
            svg.push_str(&format!(
                "<line x1=\"{swatch:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{TARGET_COLOUR}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                swatch + 22.0
            ));
            svg.push_str(&format!(
                "<text x=\"{text:.1}\" y=\"{:.1}\">target {}</text>\n",
                y + 4.0,
                escape(&percent(target))
            ));
        }
        svg.push_str("</g>\n");
    }
}

/// The y coordinate of a service level (0 at the bottom of the plot area, 1 at the top).
fn y_of(level: f64) -> f64 {
    PLOT_TOP + (1.0 - level.clamp(0.0, 1.0)) * PLOT_HEIGHT
}

/// The x axis: agents to x coordinates.
struct XScale {
    /// The agents at the left and right edges of the plot area.
    from: f64,
    to: f64,
}

impl XScale {
    /// The agents of `points` (sorted), with half the smallest gap between two counts
    /// beyond each end so that no marker sits on the frame.
    fn over(points: &[ChartPoint]) -> Self {
        let (Some(first), Some(last)) = (points.first(), points.last()) else {
            return XScale { from: 0.0, to: 1.0 };
        };
        let gap = points
            .windows(2)
            .map(|w| w[1].agents - w[0].agents)
            .filter(|gap| *gap > 0)
            .min()
            .unwrap_or(1);
        let pad = f64::from(gap) / 2.0;
        XScale {
            from: f64::from(first.agents) - pad,
            to: f64::from(last.agents) + pad,
        }
    }

    fn of(&self, agents: u32) -> f64 {
        PLOT_LEFT + (f64::from(agents) - self.from) / (self.to - self.from) * PLOT_WIDTH
    }

    /// Whole-number ticks 1, 2 or 5 × 10ⁿ agents apart, at most about ten of them, and
    /// the axis title.
    fn axis(&self, svg: &mut String) {
        let span = self.to - self.from;
        let mut step = 1u32;
        'widen: for scale in [1u32, 10, 100, 1_000, 10_000, 100_000, 1_000_000] {
            for unit in [1, 2, 5] {
                step = unit * scale;
                if span / f64::from(step) <= 10.0 {
                    break 'widen;
                }
            }
        }
        let bottom = PLOT_TOP + PLOT_HEIGHT;
        svg.push_str("<g class=\"x-axis\">\n");
        let first = (self.from.max(0.0) / f64::from(step)).ceil() as u64 * u64::from(step);
        let mut tick = first;
        while (tick as f64) <= self.to {
            if let Ok(agents) = u32::try_from(tick) {
                let x = self.of(agents);
                svg.push_str(&format!(
                    "<line x1=\"{x:.1}\" y1=\"{bottom:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n",
                    bottom + 5.0
                ));
                svg.push_str(&format!(
                    "<text class=\"x-tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{agents}</text>\n",
                    bottom + 19.0
                ));
            }
            tick += u64::from(step);
        }
        svg.push_str(&format!(
            "<text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">agents</text>\n",
            PLOT_LEFT + PLOT_WIDTH / 2.0,
            bottom + 42.0
        ));
        svg.push_str("</g>\n");
    }
}

/// `0.8` as `80 %`, `0.805` as `80.5 %`.
fn percent(level: f64) -> String {
    let p = level * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// Text made safe for XML character data and attribute values: the five special
/// characters as entities, and characters XML 1.0 cannot hold at all (most control
/// characters) as U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if u32::from(c) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::erlang::QueueModel;

    /// An element of the document: its name, attributes and the text directly in it.
    #[derive(Debug)]
    struct Element {
        name: String,
        attributes: Vec<(String, String)>,
        text: String,
    }

    impl Element {
        fn attribute(&self, name: &str) -> Option<&str> {
            self.attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }

        fn number(&self, name: &str) -> f64 {
            self.attribute(name)
                .unwrap_or_else(|| panic!("{} has no {name}", self.name))
                .parse()
                .expect("a number")
        }
    }

    /// Reads an XML document strictly enough to refuse what the chart must never emit:
    /// an optional `<?xml ...?>` declaration, then exactly one root element; every tag
    /// closed in order; attributes quoted; no `<` in text or attribute values and `&`
    /// only as one of the five entities; nothing but white space after the root.
    /// Returns the elements in document order, with entities in text decoded.
    fn parse(document: &str) -> Vec<Element> {
        let mut rest = document;
        if let Some(after) = rest.strip_prefix("<?xml") {
            let end = after.find("?>").expect("the declaration ends");
            rest = &after[end + 2..];
        }
        let mut elements: Vec<Element> = Vec::new();
        let mut open: Vec<(String, usize)> = Vec::new();
        let mut roots = 0;
        loop {
            let lt = rest.find('<');
            let text = &rest[..lt.unwrap_or(rest.len())];
            check_text(text);
            match open.last() {
                Some((_, index)) => elements[*index].text.push_str(&unescape(text)),
                None => assert!(text.trim().is_empty(), "text outside the root: {text:?}"),
            }
            let Some(lt) = lt else { break };
            let end = rest[lt..].find('>').expect("the tag ends") + lt;
            let tag = &rest[lt + 1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let (expected, _) = open.pop().expect("a closing tag closes an open one");
                assert_eq!(name.trim(), expected, "tags close in order");
                continue;
            }
            assert!(
                !tag.starts_with('!') && !tag.starts_with('?'),
                "unexpected markup <{tag}>"
            );
            if open.is_empty() {
                roots += 1;
                assert_eq!(roots, 1, "one root element");
            }
            let (tag, closed) = match tag.strip_suffix('/') {
                Some(tag) => (tag, true),
                None => (tag, false),
            };
            let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
            let name = tag[..name_end].to_owned();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
                "element name {name:?}"
            );
            let mut attributes = Vec::new();
            let mut attrs = tag[name_end..].trim_start();
            while !attrs.is_empty() {
                let eq = attrs.find("=\"").expect("attribute=\"value\"");
                let attr_name = attrs[..eq].to_owned();
                assert!(
                    attr_name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-'),
                    "attribute name {attr_name:?}"
                );
                let value_end = attrs[eq + 2..].find('"').expect("the value ends") + eq + 2;
                let value = &attrs[eq + 2..value_end];
                check_text(value);
                assert!(
                    !attributes.iter().any(|(n, _)| *n == attr_name),
                    "{attr_name} twice"
                );
                attributes.push((attr_name, unescape(value)));
                attrs = attrs[value_end + 1..].trim_start();
            }
            elements.push(Element {
                name: name.clone(),
                attributes,
                text: String::new(),
            });
            if !closed {
                open.push((name, elements.len() - 1));
            }
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
        assert_eq!(roots, 1, "one root element");
        elements
    }

    fn check_text(text: &str) {
        assert!(!text.contains('<'), "{text:?}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "a bare & in {text:?}"
            );
        }
    }

    fn unescape(text: &str) -> String {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }

    fn by_class<'a>(elements: &'a [Element], name: &str, class: &str) -> Vec<&'a Element> {
        elements
            .iter()
            .filter(|e| e.name == name && e.attribute("class") == Some(class))
            .collect()
    }

    /// The plot area's left, top, right and bottom, as the document draws it.
    fn plot_area(elements: &[Element]) -> (f64, f64, f64, f64) {
        let [rect] = by_class(elements, "rect", "plot-area")[..] else {
            panic!("one plot area");
        };
        let (x, y) = (rect.number("x"), rect.number("y"));
        (x, y, x + rect.number("width"), y + rect.number("height"))
    }

    fn polyline_points(line: &Element) -> Vec<(f64, f64)> {
        line.attribute("points")
            .expect("points")
            .split_whitespace()
            .map(|pair| {
                let (x, y) = pair.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect()
    }

    /// Erlang C over 9..=30 agents at 8 Erlangs, with simulated levels near it.
    fn erlang_c_chart() -> StaffingChart {
        let points = (9..=30)
            .map(|agents| {
                let figures = QueueModel {
                    agents,
                    calls_per_hour: 480.0,
                    handle_secs: 60.0,
                    patience_secs: None,
                }
                .figures(20.0)
                .expect("stable");
                ChartPoint {
                    agents,
                    analytic: Some(figures.service_level),
                    simulated: Some((figures.service_level - 0.01).max(0.0)),
                }
            })
            .collect();
        StaffingChart {
            title: "Staffing for 480 calls/h, handle time 60 s, service level within 20 s"
                .to_owned(),
            service_level_secs: 20.0,
            analytic_label: Some("Erlang C".to_owned()),
            target: Some(0.8),
            points,
        }
    }

    #[test]
    fn the_document_is_well_formed_with_every_point_inside_the_plot_area() {
        let chart = erlang_c_chart();
        let elements = parse(&chart.to_svg());
        assert_eq!(elements[0].name, "svg");
        assert_eq!(
            elements[0].attribute("xmlns"),
            Some("http://www.w3.org/2000/svg")
        );
        let (left, top, right, bottom) = plot_area(&elements);
        let markers = by_class(&elements, "circle", "simulated");
        assert_eq!(markers.len(), chart.points.len());
        for (marker, point) in markers.iter().zip(&chart.points) {
            assert_eq!(marker.number("data-agents"), f64::from(point.agents));
            let (cx, cy) = (marker.number("cx"), marker.number("cy"));
            assert!(left < cx && cx < right, "{cx}");
            assert!(top <= cy && cy <= bottom, "{cy}");
        }
        let [curve] = by_class(&elements, "polyline", "analytic")[..] else {
            panic!("one curve");
        };
        let vertices = polyline_points(curve);
        assert_eq!(vertices.len(), chart.points.len());
        for (x, y) in vertices {
            assert!(left < x && x < right && top <= y && y <= bottom, "{x},{y}");
        }
        let [target] = by_class(&elements, "line", "target")[..] else {
            panic!("one target line");
        };
        assert!(target.attribute("stroke-dasharray").is_some());
        // 80 % is 80 % of the way up the plot area, across all of it.
        assert!((target.number("y1") - (bottom - 0.8 * (bottom - top))).abs() < 0.1);
        assert_eq!(target.number("x1"), left);
        assert_eq!(target.number("x2"), right);
        let texts: Vec<&str> = elements
            .iter()
            .filter(|e| e.name == "text")
            .map(|e| e.text.as_str())
            .collect();
        for needed in [
            chart.title.as_str(),
            "agents",
            "service level (answered within 20 s, of offered)",
            "0 %",
            "50 %",
            "100 %",
            "Erlang C",
            "simulated",
            "target 80 %",
        ] {
            assert!(texts.contains(&needed), "no text {needed:?} in {texts:?}");
        }
    }

    #[test]
    fn text_is_escaped_never_markup() {
        let mut chart = erlang_c_chart();
        chart.title = "Queue <sales> & \"support\" 'east'\u{7}".to_owned();
        chart.analytic_label = Some("<b>Erlang</b>".to_owned());
        let svg = chart.to_svg();
        assert!(!svg.contains("<sales>") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("Queue &lt;sales&gt; &amp; &quot;support&quot; &apos;east&apos;"));
        let elements = parse(&svg);
        assert!(!elements.iter().any(|e| e.name == "sales" || e.name == "b"));
        let title = elements
            .iter()
            .find(|e| e.attribute("class") == Some("title"))
            .expect("a title");
        assert_eq!(title.text, "Queue <sales> & \"support\" 'east'\u{FFFD}");
        assert!(elements
            .iter()
            .any(|e| e.name == "text" && e.text == "<b>Erlang</b>"));
    }

    #[test]
    fn the_erlang_c_curve_never_falls_as_agents_grow() {
        let elements = parse(&erlang_c_chart().to_svg());
        let [curve] = by_class(&elements, "polyline", "analytic")[..] else {
            panic!("one curve");
        };
        let vertices = polyline_points(curve);
        for pair in vertices.windows(2) {
            let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
            assert!(x1 > x0, "left to right");
            // SVG's y grows downwards: a higher service level has a smaller y.
            assert!(y1 <= y0, "{:?}", pair);
        }
        // And it actually climbs: from about 62 % to nearly 100 %.
        let (top, bottom) = (vertices[vertices.len() - 1].1, vertices[0].1);
        assert!(bottom - top > 100.0, "{bottom} {top}");
    }

    #[test]
    fn points_sit_at_the_x_of_their_agent_count_whatever_the_order_given() {
        let mut chart = erlang_c_chart();
        // Every other count, given backwards: 10, 12, ..., 30 reversed.
        chart.points = chart
            .points
            .iter()
            .rev()
            .filter(|p| p.agents % 2 == 0)
            .copied()
            .collect();
        let elements = parse(&chart.to_svg());
        let (left, _, right, _) = plot_area(&elements);
        let markers = by_class(&elements, "circle", "simulated");
        let xs: Vec<(u32, f64)> = markers
            .iter()
            .map(|m| (m.number("data-agents") as u32, m.number("cx")))
            .collect();
        // 10 to 30, two apart, with one agent beyond each end: 9 at the left edge, 31 at
        // the right.
        for &(agents, x) in &xs {
            let expected = left + (f64::from(agents) - 9.0) / 22.0 * (right - left);
            assert!(
                (x - expected).abs() < 0.06,
                "{agents} agents at {x}, not {expected}"
            );
        }
        assert_eq!(xs.first().map(|p| p.0), Some(10), "drawn left to right");
        // Each tick label sits where a marker for that count would be.
        let ticks: Vec<&Element> = by_class(&elements, "text", "x-tick");
        assert!(ticks.len() >= 4, "{ticks:?}");
        for tick in ticks {
            let agents: u32 = tick.text.parse().expect("a whole number");
            if let Some((_, x)) = xs.iter().find(|(a, _)| *a == agents) {
                assert!((tick.number("x") - x).abs() < 0.06, "tick {agents}");
            }
        }
    }

    #[test]
    fn gaps_break_the_curve_and_missing_figures_draw_nothing() {
        let mut chart = erlang_c_chart();
        chart.points.truncate(6);
        chart.points[0].analytic = None;
        chart.points[0].simulated = None;
        chart.points[3].analytic = None;
        chart.points[5].simulated = Some(f64::NAN);
        chart.target = None;
        let elements = parse(&chart.to_svg());
        let curves = by_class(&elements, "polyline", "analytic");
        let lengths: Vec<usize> = curves.iter().map(|c| polyline_points(c).len()).collect();
        assert_eq!(lengths, [2, 2]);
        assert_eq!(by_class(&elements, "circle", "simulated").len(), 4);
        assert!(by_class(&elements, "line", "target").is_empty());
        // No formula: no curve, no legend entry for one.
        chart.analytic_label = None;
        let elements = parse(&chart.to_svg());
        assert!(by_class(&elements, "polyline", "analytic").is_empty());
        assert!(!elements.iter().any(|e| e.text == "Erlang C"));
    }

    #[test]
    fn an_empty_or_single_point_chart_is_still_a_chart() {
        let mut chart = erlang_c_chart();
        chart.points.clear();
        let elements = parse(&chart.to_svg());
        assert_eq!(elements[0].name, "svg");
        chart.points = vec![ChartPoint {
            agents: 7,
            analytic: Some(0.5),
            simulated: Some(1.5),
        }];
        let elements = parse(&chart.to_svg());
        let (left, top, right, _) = plot_area(&elements);
        let [marker] = by_class(&elements, "circle", "simulated")[..] else {
            panic!("one marker");
        };
        assert!((marker.number("cx") - (left + right) / 2.0).abs() < 0.06);
        assert_eq!(marker.number("cy"), top, "clamped to 100 %");
        assert_eq!(by_class(&elements, "circle", "analytic").len(), 1);
    }

    #[test]
    fn percentages_drop_a_needless_decimal() {
        assert_eq!(percent(0.8), "80 %");
        assert_eq!(percent(0.805), "80.5 %");
        assert_eq!(percent(1.0), "100 %");
    }
}
