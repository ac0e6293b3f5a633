//! Numbers, times and links for people: money from integer halalas, percentages from basis
//! points, Unix microseconds as minutes in Riyadh's time with the zone named, and query values
//! percent-encoded.

use domain::money::Halalas;
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::labels::Lang;

/// Everything but RFC 3986's unreserved characters is encoded in a query value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` percent-encoded for a URL query value.
pub fn query_value(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE).to_string()
}

/// An amount for people: `3,448.85 SAR` (or `ر.س`), from integer halalas.
pub fn money(lang: Lang, halalas: i64) -> String {
    let display = Halalas(halalas).to_display_string();
    let amount = display.strip_suffix(" SAR").unwrap_or(&display);
    format!("{amount} {}", lang.labels().currency)
}

/// A money table cell, with the exact halalas for machines.
pub fn money_cell(lang: Lang, halalas: i64) -> Markup {
    html! {
        td class="num" data-halalas=(halalas) { bdi { (money(lang, halalas)) } }
    }
}

/// Basis points as a percentage with two decimals: 1234 -> `12.34%`.
pub fn percent(bps: i64) -> String {
    let sign = if bps < 0 { "-" } else { "" };
    let bps = bps.unsigned_abs();
    format!("{sign}{}.{:02}%", bps / 100, bps % 100)
}

/// `part` of `whole` in basis points; 0 of nothing.
pub fn ratio_bps(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        0
    } else {
        part.saturating_mul(10_000) / whole
    }
}

/// Unix microseconds as a minute in Riyadh (UTC+3 all year: Saudi Arabia keeps no daylight
/// saving), with the zone named: `2026-12-07 09:15 (Asia/Riyadh)`, or `(بتوقيت الرياض)`.
pub fn when(lang: Lang, us: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    let Some(at) = adapters::clock::from_unix_micros(us) else {
        return us.to_string();
    };
    let (date, time) = domain::phase2::riyadh_local(at);
    match time::PrimitiveDateTime::new(date, time).format(&format) {
        Ok(text) => format!("{text} ({})", lang.desk().riyadh_zone),
        Err(_) => us.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_come_from_basis_points() {
        assert_eq!(percent(1234), "12.34%");
        assert_eq!(percent(5), "0.05%");
        assert_eq!(percent(10_000), "100.00%");
        assert_eq!(percent(-250), "-2.50%");
        assert_eq!(ratio_bps(1, 3), 3333);
        assert_eq!(ratio_bps(5, 0), 0);
    }

    #[test]
    fn money_is_shown_in_riyals_with_two_decimals() {
        assert_eq!(money(Lang::En, 344_885), "3,448.85 SAR");
        assert_eq!(money(Lang::Ar, -50), "-0.50 ر.س");
        assert_eq!(money(Lang::En, 0), "0.00 SAR");
    }

    #[test]
    fn times_are_shown_in_riyadh_with_the_zone_named() {
        // 2026-12-07 06:15 UTC is 09:15 in Riyadh.
        let us = 1_796_624_100_000_000;
        assert_eq!(when(Lang::En, us), "2026-12-07 09:15 (Asia/Riyadh)");
        assert_eq!(when(Lang::Ar, us), "2026-12-07 09:15 (بتوقيت الرياض)");
        // 22:30 UTC on the last day of a month is already the next month in Riyadh.
        let late = 1_798_756_200_000_000; // 2026-12-31 22:30 UTC
        assert_eq!(when(Lang::En, late), "2027-01-01 01:30 (Asia/Riyadh)");
    }

    #[test]
    fn a_query_value_is_percent_encoded() {
        assert_eq!(query_value("lead-1 &x=ي"), "lead-1%20%26x%3D%D9%8A");
    }

    #[test]
    fn a_money_cell_carries_the_exact_halalas() {
        assert_eq!(
            money_cell(Lang::En, 344_885).into_string(),
            r#"<td class="num" data-halalas="344885"><bdi>3,448.85 SAR</bdi></td>"#
        );
    }
}
