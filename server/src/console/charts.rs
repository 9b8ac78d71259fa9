//! Charts and the map as SVG drawn on the hub: no script, no request elsewhere, readable by a
//! screen reader (a title per chart and per bar; the same figures are in a table beside it).

use std::fmt::Write;
use vigie_core::Cell;

/// Escapes text for SVG/HTML.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One group of bars (a month, a sex, a sector): a label and up to three series.
pub struct Group {
    pub label: String,
    pub values: Vec<Cell>,
}

/// A grouped bar chart: one bar per series in each group, classes `bar-a`, `bar-b`, `bar-c`.
/// A withheld count (a report shared beyond the team) is a bar of no height titled as the
/// tables show it, and the scale comes from the counts shown only: a bar's height would
/// otherwise give the count away.
/// Counts (the scale's marks, a bar's title) are written by `number`, and a bar's title with
/// `colon`, as the page's language writes them.
pub fn bars(
    title: &str,
    series: &[&str],
    groups: &[Group],
    number: &dyn Fn(i64) -> String,
    colon: &str,
) -> String {
    let width = 640.0;
    let height = 220.0;
    // Room under the bars for a label of up to three lines.
    let (left, bottom, top) = (36.0, 50.0, 10.0);
    let count = |cell: &Cell| match cell {
        Cell::Count(n) => *n,
        Cell::Suppressed => 0,
    };
    let largest = groups
        .iter()
        .flat_map(|g| g.values.iter().map(count))
        .max()
        .unwrap_or(0);
    // Counts are whole: the scale's marks are whole numbers, each once, at most four steps.
    let (step, steps) = scale_steps(u64::try_from(largest).unwrap_or(0));
    let max = (step * steps) as f64;
    let plot_h = height - bottom - top;
    let slot = (width - left) / groups.len().max(1) as f64;
    let bar_w = (slot * 0.8 / series.len().max(1) as f64).min(28.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    for i in 0..=steps {
        let y = top + plot_h * (1.0 - i as f64 / steps as f64);
        let value = step * i;
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{width}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e7ed"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 4.0,
            y + 4.0,
            number(i64::try_from(value).unwrap_or(i64::MAX))
        );
    }
    let classes = ["bar-a", "bar-b", "bar-c"];
    for (gi, group) in groups.iter().enumerate() {
        let x0 = left + slot * gi as f64 + slot * 0.1;
        for (si, value) in group.values.iter().enumerate() {
            let h = plot_h * (count(value) as f64) / max;
            let x = x0 + bar_w * si as f64;
            let _ = write!(
                svg,
                r#"<rect class="{}" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{} · {}{colon}{}</title></rect>"#,
                classes[si % classes.len()],
                top + plot_h - h,
                (bar_w - 1.0).max(1.0),
                esc(&group.label),
                esc(series.get(si).copied().unwrap_or("")),
                match value {
                    Cell::Count(n) => number(*n),
                    withheld => withheld.to_string(),
                }
            );
        }
        // The whole label, on as many lines as the group's width asks (11px text is about 6
        // units a character): cut short, "Moins de 12 ans" and "Moins de 12 an…" differ.
        let x = x0 + slot * 0.4;
        let per_line = ((slot / 6.2) as usize).max(4);
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{}" text-anchor="middle">"#,
            height - bottom + 14.0,
        );
        for (i, line) in wrap(&group.label, per_line, 3).iter().enumerate() {
            let dy = if i == 0 { 0.0 } else { 12.0 };
            let _ = write!(svg, r#"<tspan x="{x:.1}" dy="{dy}">{}</tspan>"#, esc(line));
        }
        svg.push_str("</text>");
    }
    svg.push_str("</svg>");
    svg
}

/// The step between a count scale's marks (1, 2 or 5 times a power of ten) and how many steps
/// (1 to 4) reach `largest` or just above it.
fn scale_steps(largest: u64) -> (u64, u64) {
    let largest = largest.max(1);
    let mut magnitude = 1u64;
    loop {
        for factor in [1, 2, 5] {
            let step = factor * magnitude;
            if step * 4 >= largest {
                return (step, largest.div_ceil(step));
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

/// A label on lines of at most `width` characters, words kept whole where they fit, at most
/// `lines` lines (the last one ends with "…" when the label is longer).
fn wrap(label: &str, width: usize, lines: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in label.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = current.chars().count();
            let room = if used == 0 {
                width
            } else {
                width.saturating_sub(used + 1)
            };
            if word.len() <= room {
                if used > 0 {
                    current.push(' ');
                }
                current.extend(word.iter());
                break;
            }
            if used > 0 {
                out.push(std::mem::take(&mut current));
                continue;
            }
            // A word longer than a line: cut, the cut marked ("Communau-" / "té 01"), as a
            // reader takes "Communaut" / "é 01" for two words.
            let keep = width.saturating_sub(1).max(1);
            let rest = word.split_off(keep);
            out.push(word.into_iter().chain(['-']).collect());
            word = rest;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    if out.len() > lines {
        out.truncate(lines);
        let last = &mut out[lines - 1];
        let mut cut: Vec<char> = last.chars().collect();
        cut.truncate(width.saturating_sub(1));
        *last = cut.into_iter().collect::<String>() + "…";
    }
    out
}

/// A point to draw on the map.
#[derive(Clone)]
pub struct Point {
    pub latitude: f64,
    pub longitude: f64,
    /// CSS class: `sev-3` (worst form), `sev-2` (hazardous, or still working at the latest
    /// follow-up), `sev-1` (forced-labour indicators), `sev-0` (no alert), `visit`.
    pub class: &'static str,
    pub radius: f64,
    pub title: String,
    pub href: Option<String>,
}

/// An area's outline, as rings of (longitude, latitude).
pub struct Outline {
    pub label: String,
    pub rings: Vec<Vec<(f64, f64)>>,
}

/// Web Mercator, in tile units at zoom 0 (0..1).
fn mercator(latitude: f64, longitude: f64) -> (f64, f64) {
    let x = (longitude + 180.0) / 360.0;
    let lat = latitude.clamp(-85.0, 85.0).to_radians();
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0;
    (x, y)
}

/// Whether a point is taken for a GPS glitch rather than a place: "null island" (0,0, where a
/// phone's GPS puts a fix it did not get), or a point with no other within a degree and a half
/// (a fix on another continent). A district, a community a little apart, keeps its points:
/// each has neighbours. Cells of that size are counted once, so a national map stays linear.
fn glitches(points: &[Point]) -> Vec<bool> {
    const NEAR_DEGREES: f64 = 1.5;
    let cell = |p: &Point| {
        (
            (p.latitude / NEAR_DEGREES).floor() as i64,
            (p.longitude / NEAR_DEGREES).floor() as i64,
        )
    };
    let mut cells: std::collections::HashMap<(i64, i64), Vec<usize>> = Default::default();
    for (i, p) in points.iter().enumerate() {
        cells.entry(cell(p)).or_default().push(i);
    }
    let null_island = |p: &Point| p.latitude.abs() < 0.01 && p.longitude.abs() < 0.01;
    points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if null_island(p) {
                return true;
            }
            let (row, column) = cell(p);
            let neighbour = (row - 1..=row + 1)
                .flat_map(|r| (column - 1..=column + 1).map(move |c| (r, c)))
                .filter_map(|key| cells.get(&key))
                .flatten()
                .any(|&j| {
                    let q = &points[j];
                    j != i
                        && !null_island(q)
                        && (q.latitude - p.latitude).hypot(q.longitude - p.longitude)
                            <= NEAR_DEGREES
                });
            // Alone on the map, a point is where the work is.
            !neighbour && points.len() > 1
        })
        .collect()
}

/// The part of the (projected) world the map shows: the areas' outlines and the points near
/// them; without outlines, every point but the glitches (`glitches`: one GPS fix at 0,0 would
/// squeeze a district's points into a few pixels). `(min_x, min_y, max_x, max_y)`.
fn view_bounds(
    points: &[(f64, f64)],
    glitch: &[bool],
    outlines: &[(f64, f64)],
) -> (f64, f64, f64, f64) {
    let bounds = |coords: &mut dyn Iterator<Item = (f64, f64)>| {
        coords.fold(None, |b: Option<(f64, f64, f64, f64)>, (x, y)| {
            Some(match b {
                None => (x, y, x, y),
                Some((a, b, c, d)) => (a.min(x), b.min(y), c.max(x), d.max(y)),
            })
        })
    };
    let places = points
        .iter()
        .zip(glitch)
        .filter(|(_, glitch)| !**glitch)
        .map(|(p, _)| *p);
    let shown = match bounds(&mut outlines.iter().copied()) {
        Some((a, b, c, d)) => {
            // Points just outside the areas' outlines (a farm across the border) are kept.
            let (w, h) = ((c - a).max(1e-4), (d - b).max(1e-4));
            let near = |&(x, y): &(f64, f64)| x >= a - w && x <= c + w && y >= b - h && y <= d + h;
            bounds(&mut outlines.iter().copied().chain(places.filter(near)))
        }
        None => bounds(&mut places.into_iter()),
    };
    shown.unwrap_or((0.45, 0.45, 0.55, 0.55))
}

/// The map: points over area outlines, or over tiles from `tile_url` (`{z}`, `{x}`, `{y}`).
pub fn map(title: &str, points: &[Point], outlines: &[Outline], tile_url: Option<&str>) -> String {
    let width = 800.0;
    let height = 560.0;
    let mut coords: Vec<(f64, f64)> = points
        .iter()
        .map(|p| mercator(p.latitude, p.longitude))
        .collect();
    for o in outlines {
        for ring in &o.rings {
            coords.extend(ring.iter().map(|(lon, lat)| mercator(*lat, *lon)));
        }
    }
    let glitch = glitches(points);
    let (min_x, min_y, max_x, max_y) =
        view_bounds(&coords[..points.len()], &glitch, &coords[points.len()..]);
    // A margin, and a square-ish view that keeps the projection's proportions.
    let span = ((max_x - min_x).max(max_y - min_y) * 1.1).max(1e-5);
    let (cx, cy) = ((min_x + max_x) / 2.0, (min_y + max_y) / 2.0);
    let scale = (width / span).min(height / span);
    let project = |latitude: f64, longitude: f64| {
        let (x, y) = mercator(latitude, longitude);
        (
            width / 2.0 + (x - cx) * scale,
            height / 2.0 + (y - cy) * scale,
        )
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        // A group, not an image: its points are links, which an image's children are not to
        // a screen reader.
        r#"<svg class="map" id="map-svg" viewBox="0 0 {width} {height}" role="group" aria-label="{}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    if let Some(template) = tile_url {
        // The zoom at which the view spans about three tiles across.
        let zoom = ((width / 256.0 / span).log2().floor() as i32).clamp(0, 18);
        let n = f64::from(1u32 << zoom);
        let tile_px = scale / n;
        let x_from = ((cx - width / 2.0 / scale) * n).floor() as i64;
        let x_to = ((cx + width / 2.0 / scale) * n).floor() as i64;
        let y_from = ((cy - height / 2.0 / scale) * n).floor() as i64;
        let y_to = ((cy + height / 2.0 / scale) * n).floor() as i64;
        for tx in x_from..=x_to {
            for ty in y_from..=y_to {
                if tx < 0 || ty < 0 || tx >= n as i64 || ty >= n as i64 {
                    continue;
                }
                let href = template
                    .replace("{z}", &zoom.to_string())
                    .replace("{x}", &tx.to_string())
                    .replace("{y}", &ty.to_string());
                let _ = write!(
                    svg,
                    r#"<image class="tile" href="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"/>"#,
                    esc(&href),
                    width / 2.0 + (tx as f64 / n - cx) * scale,
                    height / 2.0 + (ty as f64 / n - cy) * scale,
                    tile_px + 0.5,
                    tile_px + 0.5
                );
            }
        }
    }
    for outline in outlines {
        let mut d = String::new();
        for ring in &outline.rings {
            for (i, (lon, lat)) in ring.iter().enumerate() {
                let (x, y) = project(*lat, *lon);
                let _ = write!(d, "{}{x:.1},{y:.1} ", if i == 0 { "M" } else { "L" });
            }
            d.push('Z');
        }
        let _ = write!(
            svg,
            r#"<path class="outline" d="{d}"><title>{}</title></path>"#,
            esc(&outline.label)
        );
        if let Some((lon, lat)) = outline.rings.first().and_then(|r| r.first()) {
            let (x, y) = project(*lat, *lon);
            let _ = write!(
                svg,
                r#"<text class="outline-label" x="{:.1}" y="{:.1}">{}</text>"#,
                x + 3.0,
                y + 12.0,
                esc(&outline.label)
            );
        }
    }
    for p in points {
        let (x, y) = project(p.latitude, p.longitude);
        // A point far outside the view (a GPS fix at 0,0) is drawn hollow at its edge, in
        // its direction, rather than stretching everyone's map to reach it.
        let (cx_px, cy_px) = (x.clamp(4.0, width - 4.0), y.clamp(4.0, height - 4.0));
        let outside = if (cx_px, cy_px) != (x, y) {
            " outside"
        } else {
            ""
        };
        let (x, y) = (cx_px, cy_px);
        let circle = format!(
            r#"<circle class="pt {}{outside}" cx="{x:.1}" cy="{y:.1}" r="{}"><title>{}</title></circle>"#,
            p.class,
            p.radius,
            esc(&p.title)
        );
        match &p.href {
            Some(href) => {
                let _ = write!(
                    svg,
                    r#"<a href="{}" aria-label="{}">{circle}</a>"#,
                    esc(href),
                    esc(&p.title)
                );
            }
            None => svg.push_str(&circle),
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(n: i64) -> String {
        n.to_string()
    }

    #[test]
    fn a_gps_fix_far_from_the_others_does_not_squeeze_the_map() {
        let mut points: Vec<Point> = (0..300)
            .map(|i| Point {
                latitude: 6.6 + f64::from(i % 20) * 0.02,
                longitude: -5.5 + f64::from(i / 20) * 0.03,
                class: "sev-0",
                radius: 3.0,
                title: String::new(),
                href: None,
            })
            .collect();
        let spread = |svg: &str| {
            let xs: Vec<f64> = svg
                .split(r#"cx=""#)
                .skip(1)
                .map(|s| s.split('"').next().unwrap().parse().unwrap())
                .collect();
            xs.iter().copied().fold(f64::MIN, f64::max)
                - xs.iter().copied().fold(f64::MAX, f64::min)
        };
        let before = spread(&map("Carte", &points, &[], None));
        assert!(before > 300.0, "{before}");
        for (latitude, longitude) in [(0.0, 0.0), (-60.0, 170.0)] {
            points.push(Point {
                latitude,
                longitude,
                class: "sev-0",
                radius: 3.0,
                title: String::new(),
                href: None,
            });
        }
        let svg = map("Carte", &points, &[], None);
        assert_eq!(
            svg.matches("outside").count(),
            2,
            "drawn at the edge, hollow"
        );
        let inside: Vec<&str> = svg
            .split("<circle")
            .filter(|c| !c.contains("outside"))
            .collect();
        assert!(spread(&inside.join("<circle")) > 300.0);

        // A small district: nine farms and one fix at 0,0.
        let mut few: Vec<Point> = points[..9].to_vec();
        few.push(points[300].clone());
        let svg = map("Carte", &few, &[], None);
        assert_eq!(svg.matches("outside").count(), 1, "{svg}");
        // A community a little apart (0.6 degrees) is shown, not taken for a glitch.
        let mut apart: Vec<Point> = points[..30].to_vec();
        for p in points.iter().take(3) {
            let mut p = p.clone();
            p.longitude += 0.6;
            apart.push(p);
        }
        let svg = map("Carte", &apart, &[], None);
        assert_eq!(svg.matches("outside").count(), 0, "{svg}");
        // A region's map: a district of eight farms two degrees from another of twelve.
        let mut region: Vec<Point> = points[..12].to_vec();
        for p in points.iter().take(8) {
            let mut p = p.clone();
            p.latitude += 2.0;
            region.push(p);
        }
        let svg = map("Carte", &region, &[], None);
        assert_eq!(svg.matches("outside").count(), 0, "{svg}");
        // Several phones' fixes at 0,0 are no place either.
        region.extend([points[300].clone(), points[300].clone()]);
        let svg = map("Carte", &region, &[], None);
        assert_eq!(svg.matches("outside").count(), 2, "{svg}");
    }

    #[test]
    fn a_chart_has_a_bar_per_value_and_escapes_labels() {
        let svg = bars(
            "Enfants",
            &["a", "b"],
            &[Group {
                label: "<x>".into(),
                values: vec![Cell::Count(3), Cell::Count(7)],
            }],
            &plain,
            ": ",
        );
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("&lt;x&gt;"));
        assert!(!svg.contains("<x>"));
    }

    #[test]
    fn a_bar_label_is_whole_on_lines_as_wide_as_its_group() {
        // Six groups (an overview's sectors): "Moins de 12 ans" was "Moins de 12 an".
        let groups: Vec<Group> = ["Moins de 12 ans", "Agriculture et pêche familiale"]
            .iter()
            .cycle()
            .take(6)
            .map(|l| Group {
                label: l.to_string(),
                values: vec![Cell::Count(1)],
            })
            .collect();
        let svg = bars("Par tranche d'âge", &["a"], &groups, &plain, " : ");
        assert!(svg.contains(">Moins de 12 ans</tspan>"), "{svg}");
        assert!(svg.contains(">Agriculture et</tspan>"), "{svg}");
        assert!(svg.contains(">pêche familiale</tspan>"), "{svg}");
        assert_eq!(wrap("abcdefghij", 4, 2), ["abc-", "def…"]);
        assert_eq!(wrap("Communauté 01", 8, 3), ["Communa-", "uté 01"]);
        assert_eq!(wrap("a bb ccc", 4, 3), ["a bb", "ccc"]);
    }

    #[test]
    fn a_withheld_count_has_no_height_and_does_not_set_the_scale() {
        let svg = bars(
            "Enfants",
            &["a", "b"],
            &[Group {
                label: "g".into(),
                values: vec![Cell::Suppressed, Cell::Count(8)],
            }],
            &plain,
            ": ",
        );
        assert!(
            svg.contains(r#"height="0.0"><title>g · a: x</title>"#),
            "{svg}"
        );
        // The scale's top is the largest count shown.
        assert!(svg.contains(">8</text>"), "{svg}");
    }

    #[test]
    fn a_count_scale_marks_whole_numbers_each_once() {
        let marks = |largest: u64| {
            let (step, steps) = scale_steps(largest);
            (0..=steps).map(|i| i * step).collect::<Vec<_>>()
        };
        assert_eq!(marks(0), [0, 1]);
        assert_eq!(marks(2), [0, 1, 2]);
        assert_eq!(marks(6), [0, 2, 4, 6]);
        assert_eq!(marks(8), [0, 2, 4, 6, 8]);
        assert_eq!(marks(9), [0, 5, 10]);
        assert_eq!(marks(37), [0, 10, 20, 30, 40]);
        assert_eq!(marks(1234), [0, 500, 1000, 1500]);
        for largest in 0..5000 {
            let m = marks(largest);
            assert!(m.len() >= 2 && m.len() <= 5, "{largest}: {m:?}");
            assert!(*m.last().unwrap() >= largest, "{largest}: {m:?}");
        }
        // Six children: the marks read 0 2 4 6, not 0 2 3 5 6.
        let svg = bars(
            "Enfants",
            &["a"],
            &[Group {
                label: "g".into(),
                values: vec![Cell::Count(6)],
            }],
            &plain,
            ": ",
        );
        let shown: Vec<&str> = svg
            .split("text-anchor=\"end\">")
            .skip(1)
            .map(|rest| rest.split('<').next().unwrap())
            .collect();
        assert_eq!(shown, ["0", "2", "4", "6"]);
    }

    #[test]
    fn map_points_fall_inside_the_view() {
        let points = vec![
            Point {
                latitude: 6.8,
                longitude: -5.3,
                class: "sev-0",
                radius: 3.0,
                title: "a".into(),
                href: None,
            },
            Point {
                latitude: 7.1,
                longitude: -5.0,
                class: "sev-3",
                radius: 3.0,
                title: "b".into(),
                href: Some("/console/x".into()),
            },
        ];
        let svg = map("m", &points, &[], Some("https://t.example/{z}/{x}/{y}.png"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("<image"));
        for part in svg.split("cx=\"").skip(1) {
            let x: f64 = part.split('"').next().unwrap().parse().unwrap();
            assert!((0.0..=800.0).contains(&x));
        }
    }
}
