//! Money per month as an inline SVG bar chart: no script, a `<title>` and a description for
//! screen readers, every bar labelled with its month and its amount (whole riyals on the chart,
//! the exact amount in each bar's own title and `data-halalas`). Right-to-left pages get the
//! mirror image: the oldest month on the right.

use maud::{html, Markup};
use projections::monthly::MonthFigure;

use super::format::money;
use super::labels::Lang;

const WIDTH: i64 = 700;
const HEIGHT: i64 = 240;
/// Room above the bars for the amounts, and below them for the months.
const TOP: i64 = 24;
const BOTTOM: i64 = 28;
const SIDE: i64 = 8;

/// Whole riyals with thousands separators, rounded half away from zero: `3,449`.
fn riyals(halalas: i64) -> String {
    let rounded = (halalas.unsigned_abs() + 50) / 100;
    let digits = rounded.to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if halalas < 0 && rounded > 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// A bar chart of `figures` (oldest first) with the id `id` and the accessible `title`.
pub fn monthly_chart(lang: Lang, id: &str, title: &str, figures: &[MonthFigure]) -> Markup {
    let count = figures.len().max(1) as i64;
    let slot = (WIDTH - 2 * SIDE) / count;
    let bar_width = (slot * 7 / 10).max(4);
    let room = HEIGHT - TOP - BOTTOM;
    // Negative months (more refunded than collected) are drawn as empty bars; their amount
    // is still written.
    let max = figures.iter().map(|f| f.halalas).max().unwrap_or(0).max(1);
    let base_y = TOP + room;
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    let description: Vec<String> = figures
        .iter()
        .map(|f| format!("{}: {}", f.month, money(lang, f.halalas)))
        .collect();
    html! {
        figure class="chart" {
            svg id=(id) direction="ltr" role="img" aria-labelledby={ (title_id) " " (desc_id) }
                width=(WIDTH) height=(HEIGHT) viewBox=(view_box) xmlns="http://www.w3.org/2000/svg" {
                title id=(title_id) { (title) }
                desc id=(desc_id) { (description.join("; ")) }
                line x1=(SIDE) y1=(base_y) x2=(WIDTH - SIDE) y2=(base_y) stroke="#9aa7b4" {}
                @for (index, figure) in figures.iter().enumerate() {
                    @let place = if lang == Lang::Ar { count - 1 - index as i64 } else { index as i64 };
                    @let x = SIDE + place * slot + (slot - bar_width) / 2;
                    @let center = x + bar_width / 2;
                    @let height = if figure.halalas <= 0 { 0 } else { (figure.halalas * room / max).max(2) };
                    g class="month" data-month=(figure.month) data-halalas=(figure.halalas) {
                        title { (figure.month) ": " (money(lang, figure.halalas)) }
                        rect class="bar" x=(x) y=(base_y - height) width=(bar_width) height=(height) rx="2" {}
                        text class="amount" x=(center) y=(base_y - height - 6) text-anchor="middle" { (riyals(figure.halalas)) }
                        text class="month-label" x=(center) y=(base_y + 18) text-anchor="middle" { (figure.month) }
                    }
                }
            }
            figcaption class="muted" { (title) " (" (lang.labels().currency) ")" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_on_the_chart_are_whole_riyals() {
        assert_eq!(riyals(344_885), "3,449");
        assert_eq!(riyals(0), "0");
        assert_eq!(riyals(12_345_678_900), "123,456,789");
        assert_eq!(riyals(-29_990), "-300");
    }

    #[test]
    fn each_month_is_a_labelled_bar_and_arabic_mirrors_the_order() {
        let figures = [
            MonthFigure {
                month: "2026-11".into(),
                halalas: 10_000,
            },
            MonthFigure {
                month: "2026-12".into(),
                halalas: 30_000,
            },
        ];
        let en = monthly_chart(Lang::En, "c", "Chart", &figures).into_string();
        assert!(en.contains(r#"<title id="c-title">Chart</title>"#), "{en}");
        assert!(
            en.contains(r#"data-month="2026-12" data-halalas="30000""#),
            "{en}"
        );
        assert!(en.contains(">300</text>"), "{en}");
        assert!(!en.contains("<script"));
        let ar = monthly_chart(Lang::Ar, "c", "Chart", &figures).into_string();
        let x_of = |svg: &str, month: &str| {
            let at = svg.find(&format!(r#"data-month="{month}""#)).unwrap();
            let rest = &svg[at..];
            let x = rest.find(r#"<rect class="bar" x=""#).unwrap() + 21;
            rest[x..].split('"').next().unwrap().parse::<i64>().unwrap()
        };
        assert!(x_of(&en, "2026-11") < x_of(&en, "2026-12"));
        assert!(x_of(&ar, "2026-11") > x_of(&ar, "2026-12"));
    }
}
