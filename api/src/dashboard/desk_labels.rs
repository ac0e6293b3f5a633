//! The finance desk's words in English and Arabic: its actions and their results, the dead
//! letters page, the partner's own page, the monthly charts and the time zone every time is
//! shown in. Kept beside [`super::labels`] (same languages, same rule: data is shown as
//! stored, only what the dashboard says is translated).

use super::labels::Lang;

/// The desk's labels, in one language.
pub struct DeskLabels {
    /// Every time is shown in Riyadh's time (UTC+3, no daylight saving), with this name.
    pub riyadh_zone: &'static str,
    pub dead_letters: &'static str,
    pub partner_page: &'static str,
    pub actions: &'static str,
    pub approve: &'static str,
    pub reject: &'static str,
    pub reject_reason: &'static str,
    pub create_payouts: &'static str,
    pub all_partners: &'static str,
    pub replay: &'static str,
    pub provider: &'static str,
    pub delivery: &'static str,
    pub received_at: &'static str,
    pub approved_message: &'static str,
    pub rejected_message: &'static str,
    pub payouts_created: &'static str,
    pub payouts_none: &'static str,
    pub replayed_message: &'static str,
    pub refused: &'static str,
    pub csrf_refused: &'static str,
    pub action_forbidden: &'static str,
    pub mrr_chart: &'static str,
    pub collections_chart: &'static str,
    pub month: &'static str,
    pub months: &'static str,
    pub opening: &'static str,
    pub closing: &'static str,
    pub occurred_at: &'static str,
    pub reference: &'static str,
    pub totals: &'static str,
    pub my_commissions: &'static str,
    pub not_a_partner: &'static str,
}

pub const DESK_EN: DeskLabels = DeskLabels {
    riyadh_zone: "Asia/Riyadh",
    dead_letters: "Dead letters",
    partner_page: "My statements",
    actions: "Actions",
    approve: "Approve",
    reject: "Reject",
    reject_reason: "Reason for rejecting",
    create_payouts: "Create payout batch",
    all_partners: "All partners",
    replay: "Replay",
    provider: "Provider",
    delivery: "Delivery",
    received_at: "Received",
    approved_message: "Commission approved:",
    rejected_message: "Commission rejected:",
    payouts_created: "Payout batches created:",
    payouts_none: "No payout batch: no partner's approved commissions reach the minimum.",
    replayed_message: "Dead letter replayed:",
    refused: "Refused:",
    csrf_refused: "This form did not come from your dashboard session (its security token is missing or wrong); nothing was changed. Reload the page and try again.",
    action_forbidden: "Your role can read this page but not change anything on it; nothing was changed.",
    mrr_chart: "Monthly recurring revenue at each month's end",
    collections_chart: "Collections per month (payments collected, net of refunds)",
    month: "Month",
    months: "Months",
    opening: "Opening balance",
    closing: "Closing balance",
    occurred_at: "When",
    reference: "Reference",
    totals: "Totals by kind",
    my_commissions: "My commissions",
    not_a_partner: "This page is for partner tokens: it shows the signed-in partner's own statements.",
};

pub const DESK_AR: DeskLabels = DeskLabels {
    riyadh_zone: "بتوقيت الرياض",
    dead_letters: "الرسائل المتعذر تسليمها",
    partner_page: "كشوف حسابي",
    actions: "الإجراءات",
    approve: "اعتماد",
    reject: "رفض",
    reject_reason: "سبب الرفض",
    create_payouts: "إنشاء دفعة صرف",
    all_partners: "كل الشركاء",
    replay: "إعادة المعالجة",
    provider: "المزوّد",
    delivery: "الإرسالية",
    received_at: "وقت الاستلام",
    approved_message: "اعتُمدت العمولة:",
    rejected_message: "رُفضت العمولة:",
    payouts_created: "أُنشئت دفعات الصرف:",
    payouts_none: "لم تُنشأ دفعة صرف: لا تبلغ العمولات المعتمدة لأي شريك الحد الأدنى.",
    replayed_message: "أُعيدت معالجة الرسالة:",
    refused: "مرفوض:",
    csrf_refused: "لم يصدر هذا النموذج عن جلستك في لوحة التحكم (رمز الحماية مفقود أو غير صحيح)؛ لم يتغير شيء. أعد تحميل الصفحة وحاول مجددًا.",
    action_forbidden: "يمكن لدورك قراءة هذه الصفحة دون تغيير أي شيء فيها؛ لم يتغير شيء.",
    mrr_chart: "الإيراد الشهري المتكرر في نهاية كل شهر",
    collections_chart: "التحصيلات الشهرية (المدفوعات المحصّلة بعد خصم المبالغ المستردة)",
    month: "الشهر",
    months: "الأشهر",
    opening: "الرصيد الافتتاحي",
    closing: "الرصيد الختامي",
    occurred_at: "الوقت",
    reference: "المرجع",
    totals: "المجاميع حسب النوع",
    my_commissions: "عمولاتي",
    not_a_partner: "هذه الصفحة لرموز الشركاء: تعرض كشوف حساب الشريك المسجّل دخوله فقط.",
};

impl Lang {
    pub fn desk(self) -> &'static DeskLabels {
        match self {
            Lang::En => &DESK_EN,
            Lang::Ar => &DESK_AR,
        }
    }
}

/// A statement line's kind in words.
pub fn line_kind_label(lang: Lang, kind: &str) -> &str {
    let (en, ar) = match kind {
        "accrued" => ("Accrued", "مستحقة"),
        "rejected" => ("Rejected", "مرفوضة"),
        "adjusted" => ("Adjusted", "معدّلة"),
        "clawed_back" => ("Clawed back", "مستردة"),
        "paid_out" => ("Paid out", "مصروفة"),
        "carried" => ("Carried", "مرحّلة"),
        other => return other,
    };
    match lang {
        Lang::En => en,
        Lang::Ar => ar,
    }
}

impl Lang {
    /// The desk's labels in the language of `labels`.
    pub fn desk_of(labels: &super::labels::Labels) -> &'static DeskLabels {
        if std::ptr::eq(labels, &super::labels::AR) {
            &DESK_AR
        } else {
            &DESK_EN
        }
    }
}

/// Why the domain refused a commission decision, said in `lang`: the rules a desk user meets
/// in Arabic; in English (and for any other rule) the domain's own words.
pub fn commission_refusal(lang: Lang, rule: &domain::commission::CommissionError) -> String {
    use domain::commission::CommissionError as E;
    if lang == Lang::En {
        return rule.to_string();
    }
    match rule {
        E::CommissionNotAccrued => "لا توجد عمولة مستحقة بهذا المعرّف".to_owned(),
        E::CommissionStillHeld { until } => format!(
            "العمولة محتجزة حتى {}",
            super::format::when(lang, adapters::clock::unix_micros(*until))
        ),
        E::CommissionAlreadyApproved => "العمولة معتمدة من قبل".to_owned(),
        E::CommissionAlreadyRejected => "العمولة مرفوضة من قبل".to_owned(),
        E::CommissionAlreadyPaidOut => "العمولة مصروفة من قبل".to_owned(),
        E::RejectionReasonRequired => "رفض العمولة يتطلب ذكر السبب".to_owned(),
        other => other.to_string(),
    }
}
