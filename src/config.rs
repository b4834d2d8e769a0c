//! Command line and environment. Every flag has an environment twin.

use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::domain::role::Role;

/// The SQLite file `convtrack` uses when no database is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://convtrack.db?mode=rwc";

/// convtrack: which AI conversations drove which business outcomes, over GraphQL.
#[derive(Debug, Parser)]
#[command(name = "convtrack", version, about)]
pub struct Cli {
    /// Database: `sqlite://FILE?mode=rwc` (embedded; one server instance) or
    /// `postgres://USER@HOST:PORT/DB` (any number of instances).
    #[arg(long, env = "DATABASE_URL", global = true, default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Most connections the database pool opens.
    #[arg(
        long,
        env = "CONVTRACK_DB_MAX_CONNECTIONS",
        global = true,
        default_value_t = 16
    )]
    pub db_max_connections: u32,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server (migrations are applied first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL); `schema.graphql` is this output.
    Schema,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CONVTRACK_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; creates the tenant if it is new. The key is printed
    /// alone on the last line of standard output, once.
    Create {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
        /// ADMIN, AGENT, CHECKOUT or INTEGRATOR.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// List every key (never the secret).
    List,
    /// Revoke a key by id; refused at once by every server sharing the database.
    Revoke {
        /// The key's id, as `keys list` shows it.
        id: Uuid,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    value.parse().map_err(|e: crate::domain::InvalidInput| e.0)
}

/// What a server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub database_url: String,
    pub db_max_connections: u32,
    pub listen: String,
}
