//! The `convtrack` command: parse the configuration, start logging, run the
//! chosen subcommand.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use convtrack::app::Application;
use convtrack::config::{Cli, Command, KeysCommand, LinkKeysCommand, ServerConfig, TenantsCommand};
use convtrack::domain::clock::{SystemClock, from_micros};
use convtrack::error::AppError;
use convtrack::service::Services;
use convtrack::{db, graphql, telemetry};

// glibc's allocator cost about a seventh of the server's CPU under load
// (a GraphQL response is many small allocations); mimalloc does the same
// work in a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the runtime: the trace exporter's client runs on its own thread.
    let telemetry = match telemetry::init(cli.log_format) {
        Ok(telemetry) => telemetry,
        Err(message) => {
            eprintln!("convtrack: {message}");
            return ExitCode::FAILURE;
        }
    };
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))
        .and_then(|runtime| runtime.block_on(run(cli)));
    telemetry.shutdown();
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("convtrack: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Schema => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Command::Healthcheck { listen } => convtrack::web::health::probe(&listen).await,
        Command::Serve(args) => {
            let config = ServerConfig {
                database_url: cli.database_url,
                db_max_connections: cli.db_max_connections,
                link_secrets: args.link_secrets()?,
                listen: args.listen,
                socket_init_timeout: ServerConfig::DEFAULT_SOCKET_INIT_TIMEOUT,
                socket_send_timeout: ServerConfig::DEFAULT_SOCKET_SEND_TIMEOUT,
                introspection: !args.disable_introspection,
                request_timeout: std::time::Duration::from_secs(args.request_timeout_secs.max(1)),
                header_read_timeout: std::time::Duration::from_secs(
                    args.header_read_timeout_secs.max(1),
                ),
                cors_origins: args.cors_origins,
                search_steps: Default::default(),
                webhook_allow_hosts: args
                    .webhook_allow_hosts
                    .iter()
                    .map(|host| host.trim().to_ascii_lowercase())
                    .filter(|host| !host.is_empty())
                    .collect(),
                webhook_retention: chrono::TimeDelta::days(i64::from(args.webhook_retention_days)),
                webhook_ca_file: args.webhook_ca_file,
                webhook_retry_scale: args.webhook_retry_scale,
                retention_every: std::time::Duration::from_secs(args.retention_check_secs),
                public_url: args.public_url,
                rate_limit: convtrack::domain::rate_limit::Budget {
                    capacity: args.rate_limit_burst.max(1) as f64,
                    per_second: args.rate_limit_per_second as f64,
                },
            };
            serve(config, args.first_admin_key_file.as_deref()).await
        }
        Command::Migrate => {
            let conn = db::connect(&cli.database_url, 1)
                .await
                .map_err(|e| e.to_string())?;
            db::migrate(&conn).await.map_err(|e| e.to_string())?;
            println!("migrations applied");
            Ok(())
        }
        Command::Keys { command } => keys(services(&cli.database_url).await?, command).await,
        Command::Tenants { command } => tenants(services(&cli.database_url).await?, command).await,
        Command::LinkKeys { command } => {
            link_keys(services(&cli.database_url).await?, command).await
        }
    }
}

/// The service layer over a small pool, for one-shot commands.
async fn services(database_url: &str) -> Result<Services, String> {
    let conn = db::connect(database_url, 1)
        .await
        .map_err(|e| e.to_string())?;
    db::migrate(&conn).await.map_err(|e| e.to_string())?;
    Ok(Services::new(conn, Arc::new(SystemClock)))
}

/// What `keys create` says of a tenant name it does not know.
async fn unknown_tenant(services: &Services, name: &str) -> String {
    let known = match services.tenant_names().await {
        Ok(names) if names.is_empty() => "there are no tenants yet".to_owned(),
        Ok(names) => format!("the tenants are: {}", names.join(", ")),
        Err(e) => format!("the tenants could not be listed: {e}"),
    };
    format!(
        "no tenant {name:?}; {known}. To create it, add --create-tenant \
         (or run `convtrack tenants create --tenant {name}` first)"
    )
}

async fn tenants(services: Services, command: TenantsCommand) -> Result<(), String> {
    if let TenantsCommand::Create { tenant } = &command {
        let created = services
            .create_tenant(tenant)
            .await
            .map_err(|e| e.to_string())?;
        println!("Created tenant {:?} ({}).", created.name, created.id);
        return Ok(());
    }
    let settings = match &command {
        TenantsCommand::Show { tenant } | TenantsCommand::Create { tenant } => {
            services.tenant_settings_by_name(tenant).await
        }
        TenantsCommand::Set { tenant, .. } => {
            let change = command.change()?;
            services
                .update_tenant_settings_by_name(tenant, change)
                .await
        }
    }
    .map_err(|e| e.to_string())?;
    let shown = serde_json::json!({
        "attributionWindowDays": settings.attribution_window_days(),
        "recordUrlTemplates": settings.record_url_templates,
        "channels": settings.channels,
        "linkTargetHosts": settings.link_target_hosts,
        "messageRetentionDays": settings.message_retention_days,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&shown).map_err(|e| e.to_string())?
    );
    Ok(())
}

async fn link_keys(services: Services, command: LinkKeysCommand) -> Result<(), String> {
    match command {
        LinkKeysCommand::List => {
            println!("{:<10}  {:<20}  RETIRED", "KID", "CREATED");
            for k in services.list_link_keys().await.map_err(|e| e.to_string())? {
                let when = |t: i64| from_micros(t).format("%Y-%m-%d %H:%M:%S").to_string();
                let retired = k
                    .retired_at
                    .map(when)
                    .unwrap_or_else(|| "- (signing)".to_owned());
                println!("{:<10}  {:<20}  {retired}", k.kid, when(k.created_at));
            }
        }
        LinkKeysCommand::Rotate => {
            let key = services
                .rotate_link_key()
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "New signing key {}; older keys still verify until removed.",
                key.kid
            );
        }
        LinkKeysCommand::Remove { kid } => {
            services
                .remove_link_key(&kid)
                .await
                .map_err(|e| e.to_string())?;
            println!("Removed key {kid}; tokens it signed are refused from now on.");
        }
    }
    Ok(())
}

async fn serve(config: ServerConfig, first_key_file: Option<&Path>) -> Result<(), String> {
    let app = Application::build(&config, Arc::new(SystemClock))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(created) = app
        .services()
        .bootstrap_first_admin()
        .await
        .map_err(|e| e.to_string())?
    {
        let tenant = &created.tenant.name;
        let written = first_key_file.map(|path| (path, write_owner_only(path, &created.secret)));
        match written {
            Some((path, Ok(()))) => println!(
                "First start: created tenant \"{tenant}\" and an ADMIN API key, written to {} (only its hash is stored).",
                path.display()
            ),
            // The key is committed: printing it is better than losing it.
            Some((path, Err(e))) => {
                tracing::warn!(path = %path.display(), error = %e, "the first ADMIN key could not be written to its file; it is printed instead");
                print_first_key(tenant, &created.secret);
            }
            None => print_first_key(tenant, &created.secret),
        }
    }
    let address = app.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%address, "convtrack listening: GraphQL at /graphql, GraphiQL at /graphiql");
    app.run_until(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("convtrack stopped");
    Ok(())
}

fn print_first_key(tenant: &str, secret: &str) {
    println!("First start: created tenant \"{tenant}\" and an ADMIN API key.");
    println!("It is shown this once; only its hash is stored:");
    println!("{secret}");
}

/// Writes `secret` to a new file only its owner may read. A file already
/// there (an earlier install's key: the database was empty) is replaced,
/// not written through, so neither a symlink nor its old mode applies.
fn write_owner_only(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{secret}")
}

async fn keys(services: Services, command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::Create {
            tenant,
            role,
            create_tenant,
        } => {
            let created = match services.create_key(&tenant, role, create_tenant).await {
                Err(AppError::NotFound(_)) => return Err(unknown_tenant(&services, &tenant).await),
                other => other.map_err(|e| e.to_string())?,
            };
            println!(
                "Created {} key {} for tenant \"{}\". Only its hash is stored; this is the one time it is shown:",
                role, created.key.id, created.tenant.name
            );
            println!("{}", created.secret);
        }
        KeysCommand::List => {
            println!(
                "{:<36}  {:<20}  {:<10}  {:<12}  {:<20}  REVOKED",
                "ID", "TENANT", "ROLE", "PREFIX", "CREATED"
            );
            for k in services.list_keys().await.map_err(|e| e.to_string())? {
                let created = from_micros(k.key.created_at).format("%Y-%m-%d %H:%M:%S");
                let revoked = k
                    .key
                    .revoked_at
                    .map(|r| from_micros(r).format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".to_owned());
                println!(
                    "{:<36}  {:<20}  {:<10}  {:<12}  {:<20}  {}",
                    k.key.id, k.tenant_name, k.key.role, k.key.key_prefix, created, revoked
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let key = services.revoke_key(id).await.map_err(|e| e.to_string())?;
            println!("Revoked key {}; it is refused from now on.", key.id);
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, finish what is in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
