//! Words and sentences the generated conversations are made of: what people
//! ask a coworking operator's assistant, in a few languages, with accents and
//! emoji, so substring searches have realistic hits.
//!
//! Every emoji and accented letter here is a single code point, so cutting
//! the opening message at 120 `char`s gives the same text as the server's
//! cut at 120 grapheme clusters.

use crate::rng::Rng;

/// A token that appears in about 0.1% of conversations, for a rare search.
pub const RARE_TOKEN: &str = "parkingspot42";

/// (display name, ASCII form for email addresses)
pub const FIRST_NAMES: &[(&str, &str)] = &[
    ("Ada", "ada"),
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Chloé", "chloe"),
    ("Łukasz", "lukasz"),
    ("Søren", "soren"),
    ("Aoife", "aoife"),
    ("Priya", "priya"),
    ("Kenji", "kenji"),
    ("Mehmet", "mehmet"),
    ("Inès", "ines"),
    ("Björn", "bjorn"),
    ("Fatima", "fatima"),
    ("Tom", "tom"),
    ("Olivia", "olivia"),
    ("Mateo", "mateo"),
    ("Nadia", "nadia"),
    ("Grace", "grace"),
    ("Rafael", "rafael"),
    ("Anaïs", "anais"),
    ("Dmitri", "dmitri"),
    ("Sofía", "sofia"),
    ("Kwame", "kwame"),
    ("Hannah", "hannah"),
];

pub const LAST_NAMES: &[(&str, &str)] = &[
    ("Lovelace", "lovelace"),
    ("Müller", "muller"),
    ("García", "garcia"),
    ("Dubois", "dubois"),
    ("Kowalski", "kowalski"),
    ("Nørgaard", "norgaard"),
    ("O'Brien", "obrien"),
    ("Sharma", "sharma"),
    ("Tanaka", "tanaka"),
    ("Yılmaz", "yilmaz"),
    ("Smith", "smith"),
    ("Jones", "jones"),
    ("Rossi", "rossi"),
    ("Mensah", "mensah"),
    ("Novák", "novak"),
    ("Brown", "brown"),
    ("Silva", "silva"),
    ("Ivanova", "ivanova"),
];

pub const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "proton.me",
    "acme-studio.io",
    "fastmail.fm",
    "northwind.co.uk",
    "example.org",
];

const DAYS: &[&str] = &[
    "tomorrow",
    "Monday",
    "next Tuesday",
    "Wednesday morning",
    "this Thursday",
    "Friday afternoon",
    "next week",
    "the 14th",
    "le 3 juin",
    "mañana",
];

const SPACES: &[&str] = &[
    "hot desk",
    "dedicated desk",
    "private office",
    "meeting room",
    "phone booth",
    "event space",
    "podcast studio",
];

/// First messages of a conversation, from the visitor.
const OPENERS: &[&str] = &[
    "Hi, do you have a hot desk available {day}?",
    "How much is a day pass?",
    "Is there parking near the building?",
    "Can I book a meeting room for {n} people {day}?",
    "What's the Wi-Fi speed like? I do a lot of video calls.",
    "I'd like to book a tour of the space {day}",
    "What does the membership include?",
    "Hello! Do you offer a {space} for a small team of {n}? We are moving from another coworking and need to start {day} if possible.",
    "Bonjour, je cherche un bureau privé pour {n} personnes près de la gare — est-ce possible de visiter {day} ? 😊",
    "¿Tienen sala de reuniones disponible {day}? Somos {n} personas y necesitamos pantalla y café ☕",
    "Können wir nächste Woche eine Führung machen? Wir brauchen {n} feste Schreibtische und einen Parkplatz 🚗",
    "Hi there 👋 is the café open on weekends, and can I bring my dog to the coworking?",
    "Do you have parking for bikes or cars? And what's the monthly price for a dedicated desk?",
    "Hey, quick question: is the Wi‑Fi included in the day pass price or is it extra?",
    "I'm a freelancer looking for a flexible membership, maybe 2–3 days a week. What are my options and prices? Also is there parking?",
    "Can I get an invoice for the day pass I bought {day}? My company needs the VAT number on it.",
    "We need a meeting room with a projector for a workshop {day}, about {n} people, full day. Catering possible?",
    "Is the {space} available {day}? How much per hour?",
    "Olá! Vocês têm mesa disponível para {day}? Quanto custa o passe diário?",
    "Hi, I booked a tour but can't make it — can I move it to {day}?",
    "Do members get 24/7 access? I sometimes work late 🌙",
    "What are your opening hours {day}?",
    "Is there a discount on the membership for startups or students? We're a team of {n} 🚀",
    "Could you tell me about the private office pricing? We'd need it for at least 6 months, starting {day}, with parking for two cars and a mailbox for our registered address.",
];

/// Later visitor messages.
const FOLLOW_UPS: &[&str] = &[
    "Great, thanks!",
    "And is parking included?",
    "Perfect, can I book it for {day}?",
    "What's the price per month for a dedicated desk?",
    "Does the meeting room have a screen and a whiteboard?",
    "Can I pay by card on arrival?",
    "Merci beaucoup ! À bientôt 🙂",
    "OK, please book the tour for {day}.",
    "How fast is the Wi-Fi exactly?",
    "Is there a kitchen and free coffee?",
    "Can my colleague join with a day pass too?",
    "Where exactly is the entrance? The parking garage is confusing 😅",
    "Sounds good. I'll go with the membership.",
    "Do you have lockers?",
    "Gracias, perfecto.",
    "Can I cancel the booking if plans change?",
];

/// Replies of the AI agent.
const REPLIES: &[&str] = &[
    "Yes! We have hot desks available {day}. A day pass is €25 and includes Wi‑Fi, coffee and access to the lounge.",
    "A day pass costs €25. Would you like me to book one for you?",
    "There is a public parking garage 100 m from the entrance; members get 20% off. We also have a bike room.",
    "The meeting room for {n} people is free {day}. It has a 65\" screen, a whiteboard and video-conferencing. Shall I reserve it?",
    "Our Wi-Fi is fibre, 1 Gbit/s symmetric, with a separate network for video calls.",
    "I'd be happy to arrange a tour! Which time suits you {day}: 10:00, 14:00 or 16:30?",
    "Membership includes a desk, 24/7 access, meeting room credits (4 h per month), mail handling and unlimited coffee ☕.",
    "Bien sûr ! Nous avons un bureau privé pour {n} personnes. Je peux vous proposer une visite {day}.",
    "¡Claro! La sala está disponible {day}. El precio es de 35 € por hora.",
    "Done — your tour is booked for {day}. You'll get a confirmation email shortly.",
    "A dedicated desk is €320 per month, a private office for {n} starts at €1,450 per month.",
    "You can pay by card or bank transfer; invoices include our VAT number.",
    "Dogs are welcome on Fridays 🐶. The café is open 8:00–18:00 on weekdays and 10:00–16:00 on Saturdays.",
    "Yes, you can cancel free of charge up to 24 hours before the booking.",
    "I've created your booking. Anything else I can help with?",
    "Of course. I've sent you a link to complete the purchase of the day pass.",
];

const TOOLS: &[&str] = &[
    r#"{"tool":"check_availability","arguments":{"space":"{space}","date":"{day}","people":{n}},"result":{"available":true,"price_eur":45}}"#,
    r#"{"tool":"create_booking","arguments":{"space":"meeting room","date":"{day}","hours":2},"result":{"booking_id":"bk_{n}","status":"confirmed"}}"#,
    r#"{"tool":"lookup_price","arguments":{"product":"day pass"},"result":{"price_eur":25,"includes":["Wi-Fi","coffee","lounge"]}}"#,
    r#"{"tool":"book_tour","arguments":{"date":"{day}","slot":"14:00"},"result":{"visitor_id":"v_{n}","status":"scheduled"}}"#,
    r#"{"tool":"parking_info","arguments":{},"result":{"garage":"Q-Park Central","distance_m":100,"member_discount":0.2}}"#,
];

/// Sentences that may be appended to make a message long.
const EXTRAS: &[&str] = &[
    "We're a small design studio, mostly remote, but we like to meet in person twice a week.",
    "Ideally somewhere quiet with good light and a decent coffee machine ☕.",
    "Also, do you have phone booths for calls? Our team is on Zoom a lot.",
    "Nous aimerions aussi savoir si le parking est inclus dans l'abonnement.",
    "Por cierto, ¿el Wi‑Fi es rápido? Trabajo con archivos grandes 📁.",
    "Ich würde gerne vorher eine Führung machen, wenn das möglich ist.",
    "Thanks a lot in advance, looking forward to hearing from you! 🙏",
];

fn fill(rng: &mut Rng, template: &str) -> String {
    let mut out = template.to_owned();
    if out.contains("{day}") {
        let day = *rng.pick(DAYS);
        out = out.replace("{day}", day);
    }
    if out.contains("{space}") {
        let space = *rng.pick(SPACES);
        out = out.replace("{space}", space);
    }
    if out.contains("{n}") {
        out = out.replace("{n}", &rng.range(2, 12).to_string());
    }
    out
}

fn with_extras(rng: &mut Rng, mut text: String, p: f64) -> String {
    while rng.chance(p) {
        text.push(' ');
        let extra = *rng.pick(EXTRAS);
        text.push_str(extra);
        if text.len() > 600 {
            break;
        }
    }
    text
}

pub fn opener(rng: &mut Rng, rare: bool) -> String {
    let base = {
        let template = *rng.pick(OPENERS);
        fill(rng, template)
    };
    let text = if rare {
        format!("{base} My reservation code is {RARE_TOKEN} — can you check it's still valid?")
    } else {
        base
    };
    with_extras(rng, text, 0.2)
}

pub fn follow_up(rng: &mut Rng) -> String {
    let text = {
        let template = *rng.pick(FOLLOW_UPS);
        fill(rng, template)
    };
    with_extras(rng, text, 0.1)
}

pub fn reply(rng: &mut Rng) -> String {
    let text = {
        let template = *rng.pick(REPLIES);
        fill(rng, template)
    };
    with_extras(rng, text, 0.05)
}

pub fn tool(rng: &mut Rng) -> String {
    {
        let template = *rng.pick(TOOLS);
        fill(rng, template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_filled_and_some_are_long_and_multibyte() {
        let mut rng = Rng::new(11);
        let openers: Vec<String> = (0..2000).map(|_| opener(&mut rng, false)).collect();
        assert!(openers.iter().all(|o| !o.contains('{')));
        assert!(openers.iter().any(|o| o.chars().count() > 120));
        assert!(openers.iter().any(|o| o.len() > o.chars().count()));
        assert!(openers.iter().any(|o| o.contains("parking")));
        assert!(!openers.iter().any(|o| o.contains(RARE_TOKEN)));
        assert!(opener(&mut rng, true).contains(RARE_TOKEN));
        assert!(tool(&mut rng).starts_with("{\"tool\""));
    }
}
