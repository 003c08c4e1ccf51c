//! Country centres, for sign-ins geo-IP could only place in a country: to compare two of
//! them when coordinates are missing, and to recognise coordinates that are a country's
//! centre rather than a place (accurate to about 1,000 km, not 100).

use std::collections::HashMap;
use std::sync::LazyLock;

/// `code,lat,lon,name` lines; `#` starts a comment.
const TABLE: &str = include_str!("country_centroids.csv");

/// Names geo-IP databases and SIEM exports use for a country that the table spells
/// another way (lower case), with the table's code.
const ALIASES: &[(&str, &str)] = &[
    ("czechia", "CZ"),
    ("russian federation", "RU"),
    ("republic of korea", "KR"),
    ("korea, republic of", "KR"),
    ("korea", "KR"),
    ("viet nam", "VN"),
    ("north macedonia", "MK"),
    ("eswatini", "SZ"),
    ("türkiye", "TR"),
    ("turkiye", "TR"),
    ("ivory coast", "CI"),
    ("cote d'ivoire", "CI"),
    ("democratic republic of the congo", "CD"),
    ("congo, the democratic republic of the", "CD"),
    ("republic of the congo", "CG"),
    ("congo", "CG"),
    ("burma", "MM"),
    ("hong kong sar", "HK"),
    ("macao", "MO"),
    ("united states of america", "US"),
    ("usa", "US"),
    ("great britain", "GB"),
    ("iran, islamic republic of", "IR"),
    ("taiwan, province of china", "TW"),
    ("palestine", "PS"),
    ("the netherlands", "NL"),
    ("cabo verde", "CV"),
    ("moldova, republic of", "MD"),
    ("tanzania, united republic of", "TZ"),
    ("syrian arab republic", "SY"),
    ("lao people's democratic republic", "LA"),
    ("brunei darussalam", "BN"),
    ("bolivia, plurinational state of", "BO"),
    ("venezuela, bolivarian republic of", "VE"),
    ("falkland islands (malvinas)", "FK"),
];

/// Points geo-IP databases give for "somewhere in this country" that are not the table's
/// centre: MaxMind's United States point (a farm in Kansas, famous for it) and its India
/// point (seen in real Okta events).
const OTHER_COUNTRY_POINTS: &[(f64, f64)] = &[(37.751, -97.822), (21.9974, 79.0011)];

/// Degrees within which coordinates count as the same point (about 5 km).
const SAME_POINT_DEG: f64 = 0.05;

/// Lower-case names and codes to centres.
static CENTRES: LazyLock<HashMap<String, (f64, f64)>> = LazyLock::new(|| {
    let mut by_code = HashMap::new();
    let mut map = HashMap::new();
    for line in TABLE.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut parts = line.splitn(4, ',');
        let (Some(code), Some(lat), Some(lon), Some(name)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(lat), Ok(lon)) = (lat.parse::<f64>(), lon.parse::<f64>()) else {
            continue;
        };
        by_code.insert(code.to_owned(), (lat, lon));
        map.insert(code.to_ascii_lowercase(), (lat, lon));
        map.insert(name.to_lowercase(), (lat, lon));
    }
    for (alias, code) in ALIASES {
        if let Some(&c) = by_code.get(*code) {
            map.insert((*alias).to_owned(), c);
        }
    }
    map
});

/// The geographic centre of a country named by its English name or ISO alpha-2 code.
pub fn centre(country: &str) -> Option<(f64, f64)> {
    CENTRES.get(country.trim().to_lowercase().as_str()).copied()
}

/// Whether `at` is a country's centre rather than a located place: geo-IP's answer when it
/// knows only the country.
pub fn is_country_point(country: Option<&str>, at: (f64, f64)) -> bool {
    let near = |p: (f64, f64)| (p.0 - at.0).abs() < SAME_POINT_DEG && (p.1 - at.1).abs() < SAME_POINT_DEG;
    OTHER_COUNTRY_POINTS.iter().any(|&p| near(p)) || country.and_then(centre).is_some_and(near)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_codes_and_aliases_find_the_centre() {
        assert_eq!(centre("United States"), centre("US"));
        assert_eq!(centre("united states of america"), centre("us"));
        assert_eq!(centre("Czechia"), centre("Czech Republic"));
        assert!(centre("Brazil").is_some());
        assert!(centre("Atlantis").is_none());
        assert!(CENTRES.len() > 400, "{}", CENTRES.len());
    }

    #[test]
    fn country_points_are_recognised_and_cities_are_not() {
        assert!(is_country_point(Some("United States"), (37.751, -97.822)));
        assert!(is_country_point(Some("Germany"), (51.1657, 10.4515)));
        assert!(!is_country_point(Some("Germany"), (52.52, 13.405)), "Berlin is a place");
        assert!(!is_country_point(None, (40.71, -74.0)));
    }
}
