//! convtrack links AI-assistant conversations (chat, email, WhatsApp, voice)
//! to the business outcomes they produce for a coworking operator — tours,
//! customers, contracts, bookings, day passes — and serves them over GraphQL.
//!
//! Where things live: pure rules in [`domain`], transactions in [`service`],
//! GraphQL resolvers in [`graphql`], HTTP routes in [`web`], the live
//! conversion feed's wake-ups in [`events`], webhook deliveries in
//! [`dispatch`]; [`app`] wires
//! them into a server that `main` and the tests both start.

pub mod app;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod domain;
pub mod error;
pub mod events;
pub mod graphql;
pub mod service;
pub mod telemetry;
pub mod web;
