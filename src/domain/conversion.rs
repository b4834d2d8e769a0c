//! Conversion kinds, the badge each one shows, and the record it links to.

use std::fmt;
use std::str::FromStr;

use super::InvalidInput;

/// A business outcome a conversation can lead to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversionKind {
    TourBooked,
    CustomerCreated,
    ContractCreated,
    BookingCreated,
    DayPassPurchased,
}

/// The kind of record in the operator's system that an outcome created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    Visitor,
    Coworker,
    CoworkerContract,
    Booking,
    CoworkerProduct,
}

/// The colour of a badge in the AI Conversations list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadgeColour {
    Lavender,
    Green,
    Blue,
    Teal,
    Peach,
}

/// How a conversion reached convtrack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversionSource {
    /// Recorded by session ID (the agent, or a backend that holds the session ID).
    Direct,
    /// Recorded with the token of a call-to-action link.
    Link,
    /// Recorded by confirming a confirmation the agent requested.
    Confirmation,
}

impl ConversionKind {
    pub const ALL: [ConversionKind; 5] = [
        ConversionKind::TourBooked,
        ConversionKind::CustomerCreated,
        ConversionKind::ContractCreated,
        ConversionKind::BookingCreated,
        ConversionKind::DayPassPurchased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversionKind::TourBooked => "TOUR_BOOKED",
            ConversionKind::CustomerCreated => "CUSTOMER_CREATED",
            ConversionKind::ContractCreated => "CONTRACT_CREATED",
            ConversionKind::BookingCreated => "BOOKING_CREATED",
            ConversionKind::DayPassPurchased => "DAY_PASS_PURCHASED",
        }
    }

    pub fn badge_label(self) -> &'static str {
        match self {
            ConversionKind::TourBooked => "Tour booked",
            ConversionKind::CustomerCreated => "Customer created",
            ConversionKind::ContractCreated => "Contract created",
            ConversionKind::BookingCreated => "Booking created",
            ConversionKind::DayPassPurchased => "Day pass purchased",
        }
    }

    pub fn badge_colour(self) -> BadgeColour {
        match self {
            ConversionKind::TourBooked => BadgeColour::Lavender,
            ConversionKind::CustomerCreated => BadgeColour::Green,
            ConversionKind::ContractCreated => BadgeColour::Blue,
            ConversionKind::BookingCreated => BadgeColour::Teal,
            ConversionKind::DayPassPurchased => BadgeColour::Peach,
        }
    }

    pub fn record_type(self) -> RecordType {
        match self {
            ConversionKind::TourBooked => RecordType::Visitor,
            ConversionKind::CustomerCreated => RecordType::Coworker,
            ConversionKind::ContractCreated => RecordType::CoworkerContract,
            ConversionKind::BookingCreated => RecordType::Booking,
            ConversionKind::DayPassPurchased => RecordType::CoworkerProduct,
        }
    }

    /// The kind whose records this record type holds (the mapping is one to one).
    pub fn for_record_type(record_type: RecordType) -> Self {
        match record_type {
            RecordType::Visitor => ConversionKind::TourBooked,
            RecordType::Coworker => ConversionKind::CustomerCreated,
            RecordType::CoworkerContract => ConversionKind::ContractCreated,
            RecordType::Booking => ConversionKind::BookingCreated,
            RecordType::CoworkerProduct => ConversionKind::DayPassPurchased,
        }
    }

    /// Whether one record may be credited to several conversations. A visitor
    /// who comes back through a later conversation books another tour with
    /// the same Visitor record, and that conversation earns its own badge.
    pub fn record_reusable_across_conversations(self) -> bool {
        self == ConversionKind::TourBooked
    }
}

impl RecordType {
    pub const ALL: [RecordType; 5] = [
        RecordType::Visitor,
        RecordType::Coworker,
        RecordType::CoworkerContract,
        RecordType::Booking,
        RecordType::CoworkerProduct,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Visitor => "VISITOR",
            RecordType::Coworker => "COWORKER",
            RecordType::CoworkerContract => "COWORKER_CONTRACT",
            RecordType::Booking => "BOOKING",
            RecordType::CoworkerProduct => "COWORKER_PRODUCT",
        }
    }
}

impl ConversionSource {
    pub const ALL: [ConversionSource; 3] = [
        ConversionSource::Link,
        ConversionSource::Direct,
        ConversionSource::Confirmation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversionSource::Direct => "DIRECT",
            ConversionSource::Link => "LINK",
            ConversionSource::Confirmation => "CONFIRMATION",
        }
    }
}

fn parse_by_name<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    what: &str,
    s: &str,
) -> Result<T, InvalidInput> {
    all.iter()
        .copied()
        .find(|v| name(*v) == s)
        .ok_or_else(|| InvalidInput::new(format!("unknown {what} {}", super::text::quoted(s))))
}

impl FromStr for ConversionKind {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_by_name(&Self::ALL, Self::as_str, "conversion kind", s)
    }
}

impl FromStr for RecordType {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_by_name(&Self::ALL, Self::as_str, "record type", s)
    }
}

impl FromStr for ConversionSource {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_by_name(&Self::ALL, Self::as_str, "conversion source", s)
    }
}

impl fmt::Display for ConversionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_follow_the_contract() {
        use BadgeColour::*;
        use ConversionKind::*;
        let table = [
            (TourBooked, "Tour booked", Lavender, RecordType::Visitor),
            (
                CustomerCreated,
                "Customer created",
                Green,
                RecordType::Coworker,
            ),
            (
                ContractCreated,
                "Contract created",
                Blue,
                RecordType::CoworkerContract,
            ),
            (BookingCreated, "Booking created", Teal, RecordType::Booking),
            (
                DayPassPurchased,
                "Day pass purchased",
                Peach,
                RecordType::CoworkerProduct,
            ),
        ];
        for (kind, label, colour, record) in table {
            assert_eq!(kind.badge_label(), label);
            assert_eq!(kind.badge_colour(), colour);
            assert_eq!(kind.record_type(), record);
            assert_eq!(ConversionKind::for_record_type(record), kind);
            assert_eq!(kind.as_str().parse::<ConversionKind>(), Ok(kind));
            assert_eq!(record.as_str().parse::<RecordType>(), Ok(record));
        }
    }

    #[test]
    fn only_visitors_are_reusable() {
        let reusable: Vec<_> = ConversionKind::ALL
            .into_iter()
            .filter(|k| k.record_reusable_across_conversations())
            .collect();
        assert_eq!(reusable, vec![ConversionKind::TourBooked]);
    }
}
