//! Numbers, times and links for people: money from integer halalas, percentages from basis
//! points, Unix microseconds as UTC minutes, and query values percent-encoded.

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

/// Unix microseconds as `2026-08-01 08:00 UTC`.
pub fn when(us: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    adapters::clock::from_unix_micros(us)
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| us.to_string())
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
