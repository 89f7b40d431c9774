//! `out-of-area`: a call whose caller ID belongs to the home country (`home_country`) but
//! which entered through an international ingress (`ingress` in `international_ingress`) or
//! was signed by an international gateway (`spc` in `international_gateway_spcs`) is marked;
//! more than `threshold` marked calls signed by one SPC in any `window_seconds` (default 20
//! in 300 s) raise an alert on that SPC. Marked calls that carry no SPC (unsigned, or whose
//! certificate failed) are counted per ingress instead (subject `{"ingress": NAME}`), since
//! the ingress is then the only handle on where they came from.

use super::config::DetectionConfig;
use super::spc::SpcState;
use super::window::Over;
use super::{duration, Subject};
use crate::event::Event;

/// Whether the call is marked.
pub(crate) fn marked(config: &DetectionConfig, event: &Event) -> bool {
    let Some(home) = &config.home_country else {
        return false;
    };
    if !event.from.starts_with(home.as_str()) {
        return false;
    }
    let by_ingress = event
        .ingress
        .as_ref()
        .is_some_and(|i| config.international_ingress.contains(i));
    let by_gateway = event
        .spc
        .as_ref()
        .is_some_and(|s| config.international_gateway_spcs.contains(s));
    by_ingress || by_gateway
}

/// Who a marked call counts against: its SPC, else its ingress.
pub(crate) fn subject(event: &Event) -> Option<Subject> {
    match (&event.spc, &event.ingress) {
        (Some(spc), _) => Some(Subject::Spc(spc.clone())),
        (None, Some(ingress)) => Some(Subject::Ingress(ingress.clone())),
        (None, None) => None,
    }
}

/// The windows the marked call at `t` pushed over the threshold.
pub(crate) fn check(
    config: &DetectionConfig,
    state: &mut SpcState,
    who: &Subject,
    t: u64,
) -> Option<(Over, String)> {
    let settings = &config.detectors.out_of_area;
    let threshold = settings.threshold;
    let (over, _) = state.sweep(
        t,
        settings.window_seconds,
        |b| b.marked > 0,
        |s| (s.marked > threshold).then_some(s.marked),
    )?;
    let home = config.home_country.as_deref().unwrap_or_default();
    let text = format!(
        "{} carried {} calls with home-country (+{home}) caller IDs from an international ingress in {} (threshold {threshold})",
        who.describe(),
        over.count,
        duration(settings.window_seconds)
    );
    Some((over, text))
}
