//! Labels: the `key=value` pairs an agent puts on a session (a prompt
//! version, a model, an experiment arm) so outcomes can be split by them,
//! and the rule for comparing two rates.
//!
//! A conversation's labels are stored in one column, sorted by key, one
//! `key=value` per line: keys cannot hold `=` and values cannot hold line
//! breaks, so the text reads back exactly, and a stats counter or a filter
//! can name a pair by its line.

use std::collections::BTreeMap;

/// At most this many labels on one conversation.
pub const MAX_LABELS: usize = 10;
pub const MAX_KEY_CHARS: usize = 40;
pub const MAX_VALUE_CHARS: usize = 100;

/// One label, checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label {
    pub key: String,
    pub value: String,
}

/// Why a label is refused; the message names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("label key {0:?} must be 1 to {MAX_KEY_CHARS} characters of a-z, 0-9, '_', '.' or '-'")]
    Key(String),
    #[error(
        "label {0:?} must have a value of 1 to {MAX_VALUE_CHARS} characters without control characters"
    )]
    Value(String),
    #[error("label key {0:?} is given twice")]
    Repeated(String),
    #[error("a conversation takes at most {MAX_LABELS} labels; these would make {0}")]
    TooMany(usize),
}

/// Whether `key` is a label key: `[a-z0-9_.-]{1,40}`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_CHARS
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

impl Label {
    pub fn new(key: &str, value: &str) -> Result<Label, LabelError> {
        if !valid_key(key) {
            return Err(LabelError::Key(key.to_owned()));
        }
        let chars = value.chars().count();
        if chars == 0 || chars > MAX_VALUE_CHARS || value.chars().any(char::is_control) {
            return Err(LabelError::Value(key.to_owned()));
        }
        Ok(Label {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The pair as the stats and the filter name it: `key=value`.
    pub fn pair(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

/// A conversation's labels, one value per key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// Labels given in one request: each key once, at most [`MAX_LABELS`].
    pub fn given(labels: Vec<Label>) -> Result<Labels, LabelError> {
        let mut map = BTreeMap::new();
        for label in labels {
            if map.contains_key(&label.key) {
                return Err(LabelError::Repeated(label.key));
            }
            map.insert(label.key, label.value);
        }
        if map.len() > MAX_LABELS {
            return Err(LabelError::TooMany(map.len()));
        }
        Ok(Labels(map))
    }

    /// Reads the stored column. Lines that do not parse (never written by
    /// this code) are skipped rather than failing every read of the row.
    pub fn from_stored(text: &str) -> Labels {
        Labels(
            text.lines()
                .filter_map(|line| line.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The stored column: sorted by key, one `key=value` per line.
    pub fn to_stored(&self) -> String {
        self.pairs().collect::<Vec<_>>().join("\n")
    }

    /// Every label as `key=value`, by key.
    pub fn pairs(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|(k, v)| format!("{k}={v}"))
    }

    pub fn iter(&self) -> impl Iterator<Item = Label> + '_ {
        self.0.iter().map(|(k, v)| Label {
            key: k.clone(),
            value: v.clone(),
        })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These labels with `changes` added or replacing the value of their
    /// key; refused when that makes more than [`MAX_LABELS`].
    pub fn merged(&self, changes: &Labels) -> Result<Labels, LabelError> {
        let mut map = self.0.clone();
        for (k, v) in &changes.0 {
            map.insert(k.clone(), v.clone());
        }
        if map.len() > MAX_LABELS {
            return Err(LabelError::TooMany(map.len()));
        }
        Ok(Labels(map))
    }

    /// What moving from `self` to `next` takes away and adds, as pairs:
    /// a changed key's old pair and new pair; an unchanged one neither.
    pub fn moved_to(&self, next: &Labels) -> (Vec<String>, Vec<String>) {
        let mut gone = Vec::new();
        let mut added = Vec::new();
        for (k, v) in &next.0 {
            match self.0.get(k) {
                Some(old) if old == v => {}
                Some(old) => {
                    gone.push(format!("{k}={old}"));
                    added.push(format!("{k}={v}"));
                }
                None => added.push(format!("{k}={v}")),
            }
        }
        for (k, v) in &self.0 {
            if !next.0.contains_key(k) {
                gone.push(format!("{k}={v}"));
            }
        }
        (gone, added)
    }
}

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The 95% Wilson score interval of `converted` out of `conversations`:
/// unlike `rate ± 1.96·se` it stays within [0, 1] and is honest for small
/// counts and rates near 0 or 1. `(0, 1)` when there is nothing to go by.
pub fn wilson_interval(converted: i64, conversations: i64) -> (f64, f64) {
    if conversations <= 0 {
        return (0.0, 1.0);
    }
    let n = conversations as f64;
    let p = converted as f64 / n;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Whether two intervals share no point: the difference between the two
/// rates is then unlikely to be chance (a conservative reading).
pub fn apart((low_a, high_a): (f64, f64), (low_b, high_b): (f64, f64)) -> bool {
    high_a < low_b || high_b < low_a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::given(
            pairs
                .iter()
                .map(|(k, v)| Label::new(k, v).expect("valid"))
                .collect(),
        )
        .expect("valid")
    }

    #[test]
    fn keys_follow_the_pattern() {
        for key in [
            "prompt",
            "model",
            "experiment.arm",
            "a-b_c.9",
            &"k".repeat(40),
        ] {
            assert!(valid_key(key), "{key}");
        }
        for key in ["", "Prompt", "a b", "a=b", "é", &"k".repeat(41), "a/b"] {
            assert!(!valid_key(key), "{key}");
            assert_eq!(Label::new(key, "v"), Err(LabelError::Key(key.to_owned())));
        }
    }

    #[test]
    fn values_are_one_to_a_hundred_characters_without_control_characters() {
        assert!(Label::new("prompt", "v7").is_ok());
        assert!(Label::new("prompt", &"é".repeat(100)).is_ok());
        assert!(Label::new("prompt", "a=b c").is_ok());
        for value in ["", "a\nb", "tab\there", &"x".repeat(101)] {
            assert_eq!(
                Label::new("prompt", value),
                Err(LabelError::Value("prompt".into()))
            );
        }
    }

    #[test]
    fn a_request_names_each_key_once_and_at_most_ten() {
        let twice = vec![
            Label::new("prompt", "a").expect("valid"),
            Label::new("prompt", "b").expect("valid"),
        ];
        assert_eq!(
            Labels::given(twice),
            Err(LabelError::Repeated("prompt".into()))
        );
        let eleven = (0..11)
            .map(|i| Label::new(&format!("k{i}"), "v").expect("valid"))
            .collect();
        assert_eq!(Labels::given(eleven), Err(LabelError::TooMany(11)));
    }

    #[test]
    fn stored_text_reads_back_sorted() {
        let l = labels(&[("prompt", "v7"), ("model", "a=b c")]);
        assert_eq!(l.to_stored(), "model=a=b c\nprompt=v7");
        assert_eq!(Labels::from_stored(&l.to_stored()), l);
        assert_eq!(Labels::from_stored(""), Labels::default());
    }

    #[test]
    fn merging_adds_and_replaces_and_stays_within_ten() {
        let l = labels(&[("prompt", "v7"), ("model", "m1")]);
        let merged = l
            .merged(&labels(&[("prompt", "v8"), ("arm", "b")]))
            .expect("valid");
        assert_eq!(merged.to_stored(), "arm=b\nmodel=m1\nprompt=v8");
        assert_eq!(
            l.moved_to(&merged),
            (
                vec!["prompt=v7".into()],
                vec!["arm=b".into(), "prompt=v8".into()]
            )
        );
        assert_eq!(l.moved_to(&l), (vec![], vec![]));
        let nine: Vec<_> = (0..9)
            .map(|i| Label::new(&format!("k{i}"), "v").expect("valid"))
            .collect();
        let nine = Labels::given(nine).expect("valid");
        assert_eq!(nine.merged(&l), Err(LabelError::TooMany(11)));
    }

    #[test]
    fn wilson_matches_known_values() {
        // 10 of 100: the textbook interval is about [0.0552, 0.1744].
        let (low, high) = wilson_interval(10, 100);
        assert!((low - 0.05522).abs() < 1e-4, "{low}");
        assert!((high - 0.17437).abs() < 1e-4, "{high}");
        // All or nothing still gives an interval inside [0, 1].
        let (low, high) = wilson_interval(0, 20);
        assert!(low.abs() < 1e-12, "{low}");
        assert!((high - 0.16113).abs() < 1e-4, "{high}");
        let (low, high) = wilson_interval(20, 20);
        assert!((low - 0.83887).abs() < 1e-4, "{low}");
        assert!((1.0 - high).abs() < 1e-12, "{high}");
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }

    #[test]
    fn intervals_apart_only_when_they_share_nothing() {
        assert!(apart((0.1, 0.2), (0.25, 0.3)));
        assert!(apart((0.25, 0.3), (0.1, 0.2)));
        assert!(!apart((0.1, 0.2), (0.2, 0.3)));
        assert!(!apart((0.1, 0.4), (0.2, 0.3)));
    }
}
