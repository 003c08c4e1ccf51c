//! The impossible-travel map: an equirectangular world (x = lon + 180, y = 90 − lat, in a
//! 360 × 180 box) with each trip drawn as its great-circle arc.

/// Natural Earth's 1:110m land, pre-projected into the box (tools/world-outline.mjs).
pub const LAND: &str = include_str!("land-110m.path");

/// Points per arc: enough for a smooth curve across an ocean at the page's width.
const ARC_STEPS: usize = 48;

/// A point in the box.
pub fn project(lat: f64, lon: f64) -> (f64, f64) {
    (lon.clamp(-180.0, 180.0) + 180.0, 90.0 - lat.clamp(-90.0, 90.0))
}

/// The great-circle arc between two places as SVG path data, cut where it crosses the
/// antimeridian (so a Tokyo → San Francisco trip goes over the Pacific, not across the map).
pub fn arc_path(from: (f64, f64), to: (f64, f64)) -> String {
    let a = unit(from);
    let b = unit(to);
    let omega = dot(a, b).clamp(-1.0, 1.0).acos();
    let mut d = String::new();
    let mut prev_x: Option<f64> = None;
    for i in 0..=ARC_STEPS {
        let t = i as f64 / ARC_STEPS as f64;
        let p = if omega < 1e-9 { a } else { slerp(a, b, omega, t) };
        let (lat, lon) = lat_lon(p);
        let (x, y) = project(lat, lon);
        let command = match prev_x {
            Some(px) if (x - px).abs() <= 180.0 => 'L',
            _ => 'M',
        };
        d.push_str(&format!("{command}{x:.2} {y:.2}"));
        prev_x = Some(x);
    }
    d
}

type V3 = [f64; 3];

fn unit((lat, lon): (f64, f64)) -> V3 {
    let (lat, lon) = (lat.to_radians(), lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn slerp(a: V3, b: V3, omega: f64, t: f64) -> V3 {
    let s = omega.sin();
    if s.abs() < 1e-12 {
        // Antipodal ends: every great circle joins them; the straight interpolation is as
        // good a choice as any and cannot divide by zero.
        return [
            a[0] + (b[0] - a[0]) * t,
            a[1] + (b[1] - a[1]) * t,
            a[2] + (b[2] - a[2]) * t,
        ];
    }
    let wa = ((1.0 - t) * omega).sin() / s;
    let wb = (t * omega).sin() / s;
    [a[0] * wa + b[0] * wb, a[1] * wa + b[1] * wb, a[2] * wa + b[2] * wb]
}

fn lat_lon(p: V3) -> (f64, f64) {
    let r = dot(p, p).sqrt().max(1e-12);
    ((p[2] / r).asin().to_degrees(), p[1].atan2(p[0]).to_degrees())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(d: &str) -> Vec<(char, f64, f64)> {
        let mut out = Vec::new();
        for part in d.split(['M', 'L']).filter(|s| !s.is_empty()) {
            let start = d.find(part).unwrap_or(0);
            let command = d[..start].chars().last().unwrap_or('M');
            let mut xy = part.split(' ').map(|v| v.parse::<f64>().unwrap());
            out.push((command, xy.next().unwrap(), xy.next().unwrap()));
        }
        out
    }

    #[test]
    fn projection_puts_the_corners_where_expected() {
        assert_eq!(project(90.0, -180.0), (0.0, 0.0));
        assert_eq!(project(-90.0, 180.0), (360.0, 180.0));
        assert_eq!(project(0.0, 0.0), (180.0, 90.0));
    }

    #[test]
    fn an_arc_starts_and_ends_at_its_places() {
        let d = arc_path((40.7, -74.0), (51.5, -0.1));
        let p = points(&d);
        assert_eq!(p.len(), ARC_STEPS + 1);
        let (x0, y0) = project(40.7, -74.0);
        let (x1, y1) = project(51.5, -0.1);
        assert!((p[0].1 - x0).abs() < 0.01 && (p[0].2 - y0).abs() < 0.01);
        let last = p[p.len() - 1];
        assert!((last.1 - x1).abs() < 0.01 && (last.2 - y1).abs() < 0.01);
        // New York → London bows north of both ends, as a great circle does.
        assert!(p.iter().any(|&(_, _, y)| y < y1 - 1.0), "{d}");
    }

    #[test]
    fn a_pacific_crossing_is_cut_at_the_antimeridian() {
        let d = arc_path((35.7, 139.7), (37.8, -122.4));
        let moves = d.matches('M').count();
        assert_eq!(moves, 2, "one cut: {d}");
        for w in points(&d).windows(2) {
            if w[1].0 == 'L' {
                assert!((w[1].1 - w[0].1).abs() <= 180.0);
            }
        }
    }

    #[test]
    fn same_place_and_antipodes_do_not_break() {
        assert!(!arc_path((10.0, 10.0), (10.0, 10.0)).contains("NaN"));
        assert!(!arc_path((0.0, 0.0), (0.0, 180.0)).contains("NaN"));
    }

    #[test]
    fn the_land_outline_has_no_seams() {
        assert!(LAND.lines().count() > 100);
        for ring in LAND.lines() {
            let p = points(ring.trim_end_matches('Z'));
            for &(_, x, y) in &p {
                // Rings across the antimeridian reach past the box; the SVG clips them.
                assert!((-360.0..=720.0).contains(&x) && (0.0..=180.0).contains(&y), "{x} {y}");
            }
            // A jump across the whole map would paint a band across it; only Antarctica's
            // closing edge along the bottom of the box may span it.
            for w in p.windows(2) {
                let along_bottom = w[0].2 == 180.0 && w[1].2 == 180.0;
                assert!((w[1].1 - w[0].1).abs() <= 180.0 || along_bottom, "{ring}");
            }
        }
    }
}
