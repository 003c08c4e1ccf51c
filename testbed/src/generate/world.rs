//! The world the synthetic tenant lives in: cities, networks, clients and apps.
//! Coordinates are real; networks use documentation and private-use address ranges only
//! where a real provider's ranges are not needed (every IP is made up, the ASNs are real).

/// A city users live in or travel to.
#[derive(Debug, Clone, Copy)]
pub struct City {
    pub name: &'static str,
    pub state: &'static str,
    pub country: &'static str,
    pub postal: &'static str,
    pub lat: f64,
    pub lon: f64,
    /// Hours east of UTC (standard time; the generator ignores DST).
    pub utc_offset: i32,
    /// Index into [`ISPS`] of the usual residential provider.
    pub isp: usize,
    /// Index into [`ISPS`] of the mobile carrier.
    pub mobile: usize,
}

#[allow(clippy::too_many_arguments)] // a table row constructor: one argument per column
const fn c(
    name: &'static str,
    state: &'static str,
    country: &'static str,
    postal: &'static str,
    lat: f64,
    lon: f64,
    utc_offset: i32,
    isp: usize,
    mobile: usize,
) -> City {
    City {
        name,
        state,
        country,
        postal,
        lat,
        lon,
        utc_offset,
        isp,
        mobile,
    }
}

/// Cities, grouped by region (home cities are drawn from the first 24).
pub const CITIES: &[City] = &[
    c(
        "New York",
        "New York",
        "United States",
        "10013",
        40.7128,
        -74.0060,
        -5,
        0,
        1,
    ),
    c(
        "San Francisco",
        "California",
        "United States",
        "94103",
        37.7749,
        -122.4194,
        -8,
        0,
        1,
    ),
    c(
        "Chicago",
        "Illinois",
        "United States",
        "60601",
        41.8781,
        -87.6298,
        -6,
        0,
        1,
    ),
    c("Austin", "Texas", "United States", "78701", 30.2672, -97.7431, -6, 2, 1),
    c(
        "Seattle",
        "Washington",
        "United States",
        "98101",
        47.6062,
        -122.3321,
        -8,
        2,
        1,
    ),
    c("Toronto", "Ontario", "Canada", "M5H", 43.6532, -79.3832, -5, 3, 4),
    c("London", "England", "United Kingdom", "EC1A", 51.5074, -0.1278, 0, 5, 6),
    c(
        "Manchester",
        "England",
        "United Kingdom",
        "M1",
        53.4808,
        -2.2426,
        0,
        5,
        6,
    ),
    c("Dublin", "Leinster", "Ireland", "D02", 53.3498, -6.2603, 0, 7, 6),
    c("Berlin", "Berlin", "Germany", "10115", 52.5200, 13.4050, 1, 8, 9),
    c("Munich", "Bavaria", "Germany", "80331", 48.1351, 11.5820, 1, 8, 9),
    c("Paris", "Ile-de-France", "France", "75001", 48.8566, 2.3522, 1, 10, 11),
    c(
        "Amsterdam",
        "North Holland",
        "Netherlands",
        "1012",
        52.3676,
        4.9041,
        1,
        12,
        9,
    ),
    c("Madrid", "Madrid", "Spain", "28001", 40.4168, -3.7038, 1, 13, 11),
    c("Lisbon", "Lisbon", "Portugal", "1100", 38.7223, -9.1393, 0, 14, 11),
    c("Stockholm", "Stockholm", "Sweden", "111 20", 59.3293, 18.0686, 1, 15, 9),
    c("Warsaw", "Masovia", "Poland", "00-001", 52.2297, 21.0122, 1, 16, 9),
    c(
        "Sao Paulo",
        "Sao Paulo",
        "Brazil",
        "01000",
        -23.5505,
        -46.6333,
        -3,
        17,
        18,
    ),
    c("Mexico City", "CDMX", "Mexico", "06000", 19.4326, -99.1332, -6, 19, 18),
    c("Bangalore", "Karnataka", "India", "560001", 12.9716, 77.5946, 5, 20, 21),
    c(
        "Singapore",
        "Singapore",
        "Singapore",
        "018956",
        1.3521,
        103.8198,
        8,
        22,
        21,
    ),
    c("Tokyo", "Tokyo", "Japan", "100-0001", 35.6762, 139.6503, 9, 23, 24),
    c(
        "Sydney",
        "New South Wales",
        "Australia",
        "2000",
        -33.8688,
        151.2093,
        10,
        25,
        24,
    ),
    c("Tel Aviv", "Tel Aviv", "Israel", "61000", 32.0853, 34.7818, 2, 26, 21),
    // Places attackers and travellers appear from.
    c("Lagos", "Lagos", "Nigeria", "100001", 6.5244, 3.3792, 1, 27, 27),
    c("Moscow", "Moscow", "Russia", "101000", 55.7558, 37.6173, 3, 28, 28),
    c(
        "Bucharest",
        "Bucharest",
        "Romania",
        "010011",
        44.4268,
        26.1025,
        2,
        29,
        29,
    ),
    c(
        "Ho Chi Minh City",
        "Ho Chi Minh",
        "Vietnam",
        "700000",
        10.8231,
        106.6297,
        7,
        30,
        30,
    ),
    c(
        "Ashburn",
        "Virginia",
        "United States",
        "20147",
        39.0438,
        -77.4874,
        -5,
        31,
        31,
    ),
    c(
        "Frankfurt am Main",
        "Hesse",
        "Germany",
        "60311",
        50.1109,
        8.6821,
        1,
        32,
        32,
    ),
];

/// How many of [`CITIES`] are home cities.
pub const HOME_CITIES: usize = 24;

/// A network operator.
#[derive(Debug, Clone, Copy)]
pub struct Isp {
    pub asn: u32,
    pub org: &'static str,
    pub domain: &'static str,
    /// First octet of the made-up address block.
    pub octet: u8,
    pub kind: NetKind,
}

/// What kind of network an address is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKind {
    Residential,
    Mobile,
    Cloud,
    Vpn,
    Tor,
    Hosting,
}

const fn i(asn: u32, org: &'static str, domain: &'static str, octet: u8, kind: NetKind) -> Isp {
    Isp {
        asn,
        org,
        domain,
        octet,
        kind,
    }
}

use NetKind::*;

/// Operators (the indices are referenced by [`CITIES`]).
pub const ISPS: &[Isp] = &[
    i(
        7922,
        "comcast cable communications, llc",
        "comcast.net",
        24,
        Residential,
    ),
    i(21928, "t-mobile usa, inc.", "t-mobile.com", 172, Mobile),
    i(7018, "at&t services, inc.", "att.net", 99, Residential),
    i(812, "rogers communications canada inc.", "rogers.com", 99, Residential),
    i(577, "bell canada", "bell.ca", 142, Mobile),
    i(2856, "british telecommunications plc", "bt.com", 86, Residential),
    i(25135, "vodafone limited", "vodafone.co.uk", 148, Mobile),
    i(5466, "eircom limited", "eir.ie", 86, Residential),
    i(3320, "deutsche telekom ag", "telekom.de", 79, Residential),
    i(3209, "vodafone gmbh", "vodafone.de", 109, Mobile),
    i(3215, "orange s.a.", "orange.fr", 90, Residential),
    i(51207, "free mobile sas", "free.fr", 37, Mobile),
    i(1136, "kpn b.v.", "kpn.com", 77, Residential),
    i(3352, "telefonica de espana", "telefonica.es", 83, Residential),
    i(
        3243,
        "meo - servicos de comunicacoes e multimedia s.a.",
        "meo.pt",
        85,
        Residential,
    ),
    i(3301, "telia company ab", "telia.se", 81, Residential),
    i(5617, "orange polska spolka akcyjna", "orange.pl", 83, Residential),
    i(
        28573,
        "claro nxt telecomunicacoes ltda",
        "claro.com.br",
        177,
        Residential,
    ),
    i(26615, "tim s/a", "tim.com.br", 187, Mobile),
    i(8151, "uninet s.a. de c.v.", "telmex.com", 189, Residential),
    i(24560, "bharti airtel ltd.", "airtel.in", 122, Residential),
    i(55836, "reliance jio infocomm limited", "jio.com", 49, Mobile),
    i(9506, "singtel fibre broadband", "singtel.com", 116, Residential),
    i(2516, "kddi corporation", "kddi.com", 106, Residential),
    i(4713, "ntt communications corporation", "ntt.com", 153, Mobile),
    i(1221, "telstra corporation ltd", "telstra.com", 101, Residential),
    i(8551, "bezeq international-ltd", "bezeqint.net", 79, Residential),
    i(37148, "globacom limited", "gloworld.com", 105, Residential),
    i(12389, "rostelecom", "rt.ru", 95, Residential),
    i(9050, "rcs & rds s.a.", "rcs-rds.ro", 86, Residential),
    i(7552, "viettel group", "viettel.vn", 116, Residential),
    i(14618, "amazon.com, inc.", "amazonaws.com", 3, Cloud),
    i(24940, "hetzner online gmbh", "your-server.de", 88, Hosting),
    // Overlay networks (not tied to a city).
    i(212238, "datacamp limited", "nordvpn.com", 185, Vpn),
    i(60729, "zwiebelfreunde e.v.", "torservers.net", 185, Tor),
    i(16509, "amazon.com, inc.", "amazonaws.com", 52, Cloud),
];

/// Index of the VPN operator in [`ISPS`].
pub const VPN_ISP: usize = 33;
/// Index of the Tor operator in [`ISPS`].
pub const TOR_ISP: usize = 34;
/// Index of the corporate cloud egress (Zscaler-like proxy on AWS) in [`ISPS`].
pub const CLOUD_EGRESS_ISP: usize = 35;
/// Hosting provider used by attackers.
pub const HOSTING_ISP: usize = 32;
/// City index of Ashburn (cloud egress region).
pub const ASHBURN: usize = 28;
/// City indices attackers come from.
pub const ATTACKER_CITIES: [usize; 5] = [24, 25, 26, 27, 29];

/// A client a user signs in with.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub raw: &'static str,
    pub os: &'static str,
    pub browser: &'static str,
    pub device: &'static str,
}

/// Clients.
pub const CLIENTS: &[Client] = &[
    Client {
        raw: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36",
        os: "Mac OS X",
        browser: "CHROME",
        device: "Computer",
    },
    Client {
        raw: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36 Edg/127.0.0.0",
        os: "Windows 10",
        browser: "EDGE_CHROMIUM",
        device: "Computer",
    },
    Client {
        raw: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
        os: "Windows 10",
        browser: "FIREFOX",
        device: "Computer",
    },
    Client {
        raw: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
        os: "Mac OS 14.4.1 (Sonoma)",
        browser: "SAFARI",
        device: "Computer",
    },
    Client {
        raw: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        os: "iOS",
        browser: "SAFARI",
        device: "Mobile",
    },
    Client {
        raw: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Mobile Safari/537.36",
        os: "Android",
        browser: "CHROME",
        device: "Mobile",
    },
];

/// [`CLIENTS`] one major browser version later, index for index (a browser that updated
/// itself).
pub const UPDATED_CLIENTS: &[Client] = &[
    Client {
        raw: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
        os: "Mac OS X",
        browser: "CHROME",
        device: "Computer",
    },
    Client {
        raw: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36 Edg/128.0.0.0",
        os: "Windows 10",
        browser: "EDGE_CHROMIUM",
        device: "Computer",
    },
    Client {
        raw: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:129.0) Gecko/20100101 Firefox/129.0",
        os: "Windows 10",
        browser: "FIREFOX",
        device: "Computer",
    },
    Client {
        raw: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        os: "Mac OS 14.4.1 (Sonoma)",
        browser: "SAFARI",
        device: "Computer",
    },
    Client {
        raw: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        os: "iOS",
        browser: "SAFARI",
        device: "Mobile",
    },
    Client {
        raw: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Mobile Safari/537.36",
        os: "Android",
        browser: "CHROME",
        device: "Mobile",
    },
];

/// Clients attackers use (scripted tooling).
pub const ATTACK_CLIENTS: &[Client] = &[
    Client {
        raw: "python-requests/2.31.0",
        os: "Unknown",
        browser: "UNKNOWN",
        device: "Unknown",
    },
    Client {
        raw: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        os: "Linux",
        browser: "CHROME",
        device: "Computer",
    },
    Client {
        raw: "curl/8.4.0",
        os: "Unknown",
        browser: "UNKNOWN",
        device: "Unknown",
    },
];

/// SSO apps, as `(id, name)`.
pub const APPS: &[(&str, &str)] = &[
    ("0oa1slack0000000000", "Slack"),
    ("0oa1gsuite000000000", "Google Workspace"),
    ("0oa1salesforce00000", "Salesforce"),
    ("0oa1github000000000", "GitHub Enterprise"),
    ("0oa1jira00000000000", "Jira Software"),
    ("0oa1zoom00000000000", "Zoom"),
    ("0oa1workday0000000", "Workday"),
    ("0oa1aws000000000000", "AWS IAM Identity Center"),
];

/// Great-circle distance in km.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (a.0.to_radians(), a.1.to_radians(), b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}
