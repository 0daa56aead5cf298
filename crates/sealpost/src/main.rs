//! `sealpost`: the command line. Parses arguments, loads configuration,
//! and hands over to [`sealpost::serve`].

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use sealpost::{
    admin_cli,
    api_client::ApiClient,
    config::{self, Config},
    serve::Application,
    tls::CertificateSource,
};

#[derive(Debug, Parser)]
#[command(name = "sealpost", version, about = "Secure-messaging email gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (SMTP listener, relay queue, admin HTTP).
    Serve {
        /// Configuration file; without one the embedded defaults apply
        /// (SQLite in ./data, SMTP on 127.0.0.1:2525).
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// SMTP accounts that applications submit mail with, through the
    /// running gateway's API (super_admin).
    SmtpAccount {
        #[command(subcommand)]
        command: SmtpAccountCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Secure Messaging policies, through the running gateway's API.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Import directory users from CSV (`import users FILE.csv`), or a
    /// whole policy configuration exported by `sealpost export`
    /// (`import FILE`, TOML or JSON; replaces everything).
    #[command(args_conflicts_with_subcommands = true)]
    Import {
        #[command(subcommand)]
        what: Option<ImportCommand>,
        /// The configuration document to import.
        file: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print the whole policy configuration (for version control).
    Export {
        /// toml or json.
        #[arg(long, default_value = "toml")]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Manage API keys for the REST API (/api/v1).
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Administrators of the console, who sign in with a name and
    /// password. Works while the gateway runs.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Message tracking: search, recall, extend expiry (through the API).
    Messages {
        #[command(subcommand)]
        command: MessagesCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The relay queue: depth per next hop, waiting recipients, retry
    /// now, bounce, delete (through the API).
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The vault's master keys (run with the gateway stopped).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        #[arg(long, short, env = "SEALPOST_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// DKIM signing keys.
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DkimCommand {
    /// Write a new private key (0600, never over an existing file) and
    /// print the DNS TXT record that publishes it; then add a
    /// `[[dkim.key]]` entry naming the file.
    Keygen {
        /// The signing domain: mail whose header From is in it is signed.
        #[arg(long)]
        domain: String,
        /// The selector: the key is published at `S._domainkey.DOMAIN`.
        #[arg(long)]
        selector: String,
        /// rsa-sha256 (2048 bits; every verifier) or ed25519-sha256.
        #[arg(long, default_value = "rsa-sha256")]
        algorithm: String,
        /// The key file; default `DOMAIN.SELECTOR.dkim.pem` here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Which waiting recipients (`queue list` and the bulk actions).
#[derive(Debug, clap::Args)]
struct QueueFilterArgs {
    /// Recipients of this domain.
    #[arg(long)]
    domain: Option<String>,
    /// Part of the envelope sender.
    #[arg(long)]
    sender: Option<String>,
    /// Part of the recipient address.
    #[arg(long)]
    recipient: Option<String>,
}

impl QueueFilterArgs {
    fn into_filter(self, deferred: bool) -> admin_cli::queue::QueueFilter {
        admin_cli::queue::QueueFilter {
            domain: self.domain,
            sender: self.sender,
            recipient: self.recipient,
            deferred,
        }
    }
}

/// The recipients of a queue action: ids, or a filter.
#[derive(Debug, clap::Args)]
struct QueueTargetArgs {
    /// Recipient ids, as `sealpost queue list` shows them
    /// (`<queue id>.<n>`).
    ids: Vec<String>,
    /// Every recipient that failed at least one attempt.
    #[arg(long)]
    all_deferred: bool,
    #[command(flatten)]
    filter: QueueFilterArgs,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// The depth per next hop and destination domain.
    Summary,
    /// Waiting recipients with their last error and next attempt.
    List {
        #[command(flatten)]
        filter: QueueFilterArgs,
        /// Only recipients that failed at least one attempt.
        #[arg(long)]
        deferred: bool,
        /// next_attempt, received, attempts, recipient, sender or domain.
        #[arg(long)]
        sort: Option<String>,
        /// Descending order.
        #[arg(long)]
        desc: bool,
        /// At most this many recipients.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Try recipients again now.
    Retry {
        #[command(flatten)]
        target: QueueTargetArgs,
    },
    /// Fail recipients for good; each sender gets a DSN ("bounced by an
    /// administrator").
    Bounce {
        #[command(flatten)]
        target: QueueTargetArgs,
    },
    /// Drop recipients from the queue without telling the sender.
    Delete {
        #[command(flatten)]
        target: QueueTargetArgs,
    },
}

#[derive(Debug, Subcommand)]
enum MessagesCommand {
    /// Search messages, newest first.
    List {
        /// Part of the envelope sender.
        #[arg(long)]
        from: Option<String>,
        /// Part of a recipient address.
        #[arg(long)]
        to: Option<String>,
        /// Part of the subject.
        #[arg(long)]
        subject: Option<String>,
        /// queued, delivered, failed, secure, expired, recalled or deleted.
        #[arg(long)]
        status: Option<String>,
        /// Received at or after (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Received before (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// At most this many messages.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One message's tracking record (JSON).
    Show { id: String },
    /// Recall messages: secure recipients lose access, queued deliveries
    /// are cancelled, the content is destroyed.
    Recall {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Extend how long a secure message stays readable.
    Extend {
        id: String,
        /// Days to add to the current expiry.
        #[arg(long, conflicts_with = "until")]
        days: Option<u32>,
        /// The new expiry (RFC 3339).
        #[arg(long)]
        until: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Key versions, and how many stored message keys each one wraps.
    List,
    /// Add a master key version and re-wrap every message key with it;
    /// run again to resume an interrupted rotation. While the gateway
    /// runs, through its API (SEALPOST_API_KEY, super_admin): new mail is
    /// sealed with the new version at once and keys are re-wrapped in the
    /// background, with progress shown here.
    Rotate {
        /// Message keys re-wrapped per commit.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
    /// Open every stored content and report any that does not.
    Verify {
        /// Contents checked per step.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

/// How the administration commands reach the gateway.
#[derive(Debug, clap::Args)]
struct ApiArgs {
    /// The configuration file (for admin.listen).
    #[arg(long, short, env = "SEALPOST_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The API's address, host:port (default: admin.listen).
    #[arg(long, env = "SEALPOST_API_ADDR", global = true)]
    api_addr: Option<String>,
    /// An API key (from `sealpost apikey create` or the first start).
    #[arg(long, env = "SEALPOST_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SmtpAccountCommand {
    /// Make an account; its password is printed once on stdout.
    Add {
        name: String,
        /// An address or domain (`*.domain` for subdomains too) it may send
        /// as; repeat for more.
        #[arg(long, required = true)]
        sender: Vec<String>,
        /// Messages an hour (default 1000).
        #[arg(long)]
        rate: Option<u32>,
    },
    /// List the accounts.
    List,
    /// Remove an account.
    Remove { name: String },
    /// Give an account a new password, printed once on stdout.
    Passwd { name: String },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// List policies.
    List {
        /// active, future, expired or disabled.
        #[arg(long)]
        status: Option<String>,
        /// Policy type (secure_messaging).
        #[arg(long = "type")]
        kind: Option<String>,
    },
    /// Show one policy as JSON.
    Show { id: i64 },
    /// Add a policy from a JSON document (a file, or - for stdin).
    Add { file: PathBuf },
    /// Remove a policy.
    Remove { id: i64 },
    /// Explain which policy applies to a message, and why.
    Test {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        header_from: Option<String>,
        #[arg(long)]
        ip: Option<String>,
        /// RFC 3339 time (default now).
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Directory users from CSV: header row with `address`, optional
    /// `display_name`, other columns are attributes.
    Users { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an administrator and print a one-time password, to be
    /// replaced at the first sign-in.
    Create {
        /// The sign-in name: letters, digits, '.', '_', '-' or '@'.
        name: String,
        /// super_admin, policy_admin, tracking_admin or read_only.
        #[arg(long)]
        role: String,
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Give an administrator a new one-time password (printed once); their
    /// sessions end. Two-step sign-in stays as it is (see `reset-totp`).
    ResetPassword {
        name: String,
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Turn an administrator's two-step sign-in (TOTP) off, for a lost
    /// device; they can turn it on again from their account page.
    ResetTotp {
        name: String,
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List administrators: name, role, last sign-in, whether the password
    /// is still one-time.
    List {
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Remove an administrator (never the last super admin).
    Remove {
        name: String,
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Create a key and print it once (only its hash is stored). Works
    /// while the gateway runs.
    Create {
        /// super_admin, policy_admin, tracking_admin or read_only.
        #[arg(long)]
        role: String,
        /// A note to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List keys: id, role, name, created, last used.
    List {
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Revoke a key by its id (the part after `sp_`); it stops working at once.
    Revoke {
        id: String,
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration and explain every error with its key.
    Check {
        #[arg(long, short, env = "SEALPOST_CONFIG")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Check { config },
        } => check(config),
        Command::Serve { config } => serve(config),
        Command::Dkim {
            command:
                DkimCommand::Keygen {
                    domain,
                    selector,
                    algorithm,
                    out,
                },
        } => {
            let out = out.unwrap_or_else(|| format!("{domain}.{selector}.dkim.pem").into());
            match sealpost::dkim::keygen(&domain, &selector, &algorithm, &out) {
                Ok(record) => {
                    eprintln!("sealpost: wrote the private key to {}", out.display());
                    println!("{record}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sealpost: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Keys { command, config } => {
            let config = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match command {
                KeysCommand::List => sealpost::keys::list(&config),
                KeysCommand::Rotate { batch } => {
                    sealpost::keys::rotate(&config, batch, || gateway_api(&config))
                }
                KeysCommand::Verify { batch } => sealpost::keys::verify(&config, batch),
            }
        }
        Command::Apikey {
            command: ApikeyCommand::Create { role, name, config },
        } => apikey_create(config, &role, &name),
        Command::Admin { command } => admin_command(command),
        Command::Apikey {
            command: ApikeyCommand::List { config },
        } => with_admin_store(config, |store| {
            Box::pin(async move {
                use sealpost_store::AdminStore;
                let keys = store.list_api_keys().await.map_err(|e| e.to_string())?;
                println!(
                    "{:<14}  {:<14}  {:<20}  {:<20}  NAME",
                    "ID", "ROLE", "CREATED", "LAST USED"
                );
                for k in keys {
                    println!(
                        "{:<14}  {:<14}  {:<20}  {:<20}  {}",
                        k.id,
                        k.role.as_str(),
                        sealpost_store::rfc3339(k.created_at),
                        k.last_used_at
                            .map(sealpost_store::rfc3339)
                            .unwrap_or_else(|| "never".into()),
                        // Set through the API too: shown as one clean line.
                        sealpost_policy::text::one_line(&k.name, 100)
                    );
                }
                Ok(())
            })
        }),
        Command::Apikey {
            command: ApikeyCommand::Revoke { id, config },
        } => with_admin_store(config, |store| {
            Box::pin(async move {
                use sealpost_store::AdminStore;
                let id = id
                    .trim()
                    .trim_start_matches("sp_")
                    .split('_')
                    .next()
                    .unwrap_or("")
                    .to_owned();
                if store
                    .revoke_api_key(&id, sealpost_store::audit::Actor::cli())
                    .await
                    .map_err(|e| e.to_string())?
                {
                    eprintln!("Revoked API key {id}.");
                    Ok(())
                } else {
                    Err(format!(
                        "no API key with id {id:?} (see `sealpost apikey list`)"
                    ))
                }
            })
        }),
        Command::SmtpAccount { command, api } => admin(&api, |client| match command {
            SmtpAccountCommand::Add { name, sender, rate } => {
                admin_cli::smtp_accounts::add(client, &name, &sender, rate)
            }
            SmtpAccountCommand::List => admin_cli::smtp_accounts::list(client),
            SmtpAccountCommand::Remove { name } => admin_cli::smtp_accounts::remove(client, &name),
            SmtpAccountCommand::Passwd { name } => admin_cli::smtp_accounts::passwd(client, &name),
        }),
        Command::Policy { command, api } => admin(&api, |client| match command {
            PolicyCommand::List { status, kind } => {
                admin_cli::policy_list(client, status.as_deref(), kind.as_deref())
            }
            PolicyCommand::Show { id } => admin_cli::policy_show(client, id),
            PolicyCommand::Add { file } => admin_cli::policy_add(client, &file),
            PolicyCommand::Remove { id } => admin_cli::policy_remove(client, id),
            PolicyCommand::Test {
                from,
                to,
                header_from,
                ip,
                at,
            } => admin_cli::policy_test(
                client,
                &from,
                &to,
                header_from.as_deref(),
                ip.as_deref(),
                at.as_deref(),
            ),
        }),
        Command::Messages { command, api } => admin(&api, |client| match command {
            MessagesCommand::List {
                from,
                to,
                subject,
                status,
                since,
                until,
                limit,
            } => admin_cli::messages_list(
                client,
                &admin_cli::MessageSearch {
                    from,
                    to,
                    subject,
                    status,
                    since,
                    until,
                    limit: limit.max(1),
                },
            ),
            MessagesCommand::Show { id } => admin_cli::messages_show(client, &id),
            MessagesCommand::Recall { ids } => admin_cli::messages_recall(client, &ids),
            MessagesCommand::Extend { id, days, until } => {
                admin_cli::messages_extend(client, &id, days, until.as_deref())
            }
        }),
        Command::Queue { command, api } => admin(&api, |client| {
            let act = |action: &str, t: QueueTargetArgs| {
                admin_cli::queue::act(
                    client,
                    action,
                    &t.ids,
                    &t.filter.into_filter(t.all_deferred),
                )
            };
            match command {
                QueueCommand::Summary => admin_cli::queue::summary(client),
                QueueCommand::List {
                    filter,
                    deferred,
                    sort,
                    desc,
                    limit,
                } => admin_cli::queue::list(
                    client,
                    &filter.into_filter(deferred),
                    &admin_cli::queue::ListOrder {
                        sort,
                        descending: desc,
                        limit: limit.max(1),
                    },
                ),
                QueueCommand::Retry { target } => act("retry", target),
                QueueCommand::Bounce { target } => act("bounce", target),
                QueueCommand::Delete { target } => act("delete", target),
            }
        }),
        Command::Import { what, file, api } => admin(&api, |client| match (what, file) {
            (Some(ImportCommand::Users { file }), _) => admin_cli::import_users(client, &file),
            (None, Some(file)) => admin_cli::import_config(client, &file),
            (None, None) => Err(admin_cli::Failure {
                message: "name a file: `sealpost import FILE` or `sealpost import users FILE.csv`"
                    .into(),
                code: 2,
            }),
        }),
        Command::Export {
            format,
            output,
            api,
        } => admin(&api, |client| {
            admin_cli::export(client, &format, output.as_deref())
        }),
    }
}

fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    config::load(path, std::env::vars()).map_err(|errors| {
        let source = path.map_or_else(
            || "the built-in defaults".to_owned(),
            |p| p.display().to_string(),
        );
        eprintln!(
            "sealpost: the configuration ({source}) has {} error(s):",
            errors.0.len()
        );
        for e in &errors.0 {
            eprintln!("  {e}");
        }
        eprintln!("See docs/configuration.md for every key and its default.");
        ExitCode::from(2)
    })
}

fn check(path: Option<PathBuf>) -> ExitCode {
    match load(path.as_deref()) {
        Err(code) => code,
        Ok(c) => {
            // What serve would refuse beyond the file: the stored
            // configuration and the master keys.
            let stored = sealpost::stored_check::check(&c);
            // Unknown (not readable) counts as existing: the stricter check.
            let database_exists = sealpost_store::SqliteStore::path_of_url(&c.database_url)
                .try_exists()
                .unwrap_or(true);
            let mut errors = stored.errors;
            let keys = sealpost::keys::check_keys(&c, database_exists).unwrap_or_else(|e| {
                errors.push(config::ConfigError {
                    path: String::new(),
                    message: format!("{e:#}"),
                });
                String::new()
            });
            if !errors.is_empty() {
                let source = path.as_deref().map_or_else(
                    || "the built-in defaults".to_owned(),
                    |p| p.display().to_string(),
                );
                eprintln!(
                    "sealpost: serve would refuse to start with this configuration ({source}): {} error(s):",
                    errors.len()
                );
                for e in &errors {
                    eprintln!("  {e}");
                }
                if !stored.summary.is_empty() {
                    eprintln!("  (stored configuration: {})", stored.summary);
                }
                return ExitCode::from(2);
            }
            for w in &stored.warnings {
                eprintln!("warning: {w}");
            }
            println!("configuration ok");
            println!("  server.hostname      {}", c.hostname);
            println!("  server.data_dir      {}", c.data_dir.display());
            println!("  database.url         {}", c.database_url);
            println!("  smtp.listen          {}", join(&c.smtp.listen));
            println!(
                "  smtp.relay_networks  {}",
                join(&c.smtp.relay_networks.iter().collect::<Vec<_>>())
            );
            println!(
                "  domains.internal     {}",
                join(&c.internal_domains.iter().collect::<Vec<_>>())
            );
            println!(
                "  relay.next_hop       {}",
                c.relay
                    .next_hop
                    .as_ref()
                    .map_or("(MX lookup)".to_owned(), ToString::to_string)
            );
            println!("  admin.listen         {}", c.admin_listen);
            println!("  portal.listen        {}", c.portal.listen);
            println!("  portal.url           {}", c.portal.url);
            println!("  master keys          {keys}");
            println!("  stored config        {}", stored.summary);
            if c.internal_domains.iter().next().is_some() && c.relay.internal_next_hop.is_none() {
                println!(
                    "warning: domains.internal is set but relay.internal_next_hop is not: mail to internal domains will go to their MX hosts"
                );
            }
            ExitCode::SUCCESS
        }
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "(none)".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn serve(path: Option<PathBuf>) -> ExitCode {
    let config = match load(path.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    private_umask();
    init_tracing(&config);
    raise_file_limit(config.smtp.max_connections);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealpost: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Registered first: a SIGTERM during start-up stops the gateway
        // gracefully instead of killing it.
        let stop = stop_signal();
        let app = match Application::build(config.clone()).await {
            Ok(app) => app,
            Err(e) => {
                eprintln!("sealpost: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        banner(&config, &app);
        match app.run_until_stopped(stop).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sealpost: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// The host of an `http(s)://host[:port][/…]` URL (IPv6 without brackets).
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// An admin listener that serves TLS is spoken to over TLS, trusting its
/// own certificate for the host of admin.url.
fn admin_tls(
    config: Option<&sealpost::config::Config>,
) -> Result<Option<sealpost::api_client::ClientTls>, String> {
    match config.and_then(|c| c.admin_tls.clone().map(|t| (t, c))) {
        None => Ok(None),
        Some(((cert, _), c)) => {
            let host = host_of(&c.admin_url)
                .filter(|h| h.parse::<std::net::IpAddr>().is_err())
                .unwrap_or_else(|| "localhost".into());
            sealpost::api_client::ClientTls::trusting(&cert, &host).map(Some)
        }
    }
}

/// The running gateway's API for `keys rotate`: admin.listen (or
/// SEALPOST_API_ADDR), with the key in SEALPOST_API_KEY.
fn gateway_api(config: &sealpost::config::Config) -> Result<ApiClient, String> {
    let key = std::env::var("SEALPOST_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            "the gateway is running (it holds the database): set SEALPOST_API_KEY to a \
             super_admin API key so the rotation runs through its API, or stop it first"
                .to_owned()
        })?;
    let authority = std::env::var("SEALPOST_API_ADDR")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| config.admin_listen.to_string());
    Ok(ApiClient {
        authority,
        key,
        tls: admin_tls(Some(config))?,
    })
}

/// Runs an administration command against the gateway's API.
fn admin(
    args: &ApiArgs,
    command: impl FnOnce(&ApiClient) -> Result<(), admin_cli::Failure>,
) -> ExitCode {
    let config = match (&args.api_addr, load(args.config.as_deref())) {
        (_, Ok(c)) => Some(c),
        (Some(_), Err(_)) => None,
        (None, Err(code)) => return code,
    };
    let authority = match (&args.api_addr, &config) {
        (Some(a), _) => a.clone(),
        (None, Some(c)) => c.admin_listen.to_string(),
        (None, None) => unreachable!("a configuration or an address"),
    };
    let tls = match admin_tls(config.as_ref()) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("sealpost: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(key) = args.api_key.clone() else {
        eprintln!(
            "sealpost: an API key is needed: --api-key or SEALPOST_API_KEY (create one with `sealpost apikey create --role policy_admin`)"
        );
        return ExitCode::from(2);
    };
    match command(&ApiClient {
        authority,
        key,
        tls,
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("sealpost: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Runs `work` on the store opened beside a running gateway.
fn with_admin_store(
    path: Option<PathBuf>,
    work: impl FnOnce(
        sealpost_store::SqliteStore,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>>>>,
) -> ExitCode {
    let config = match load(path.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealpost: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let db = sealpost_store::SqliteStore::path_of_url(&config.database_url);
        let store =
            match sealpost_store::SqliteStore::open_shared(&db, &config.data_dir.join("spool"))
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!(
                        "sealpost: cannot open the database {} (database.url): {e}",
                        db.display()
                    );
                    return ExitCode::FAILURE;
                }
            };
        match work(store).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sealpost: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A role named on the command line, or the message that lists them.
fn role_arg(role: &str) -> Result<sealpost_store::Role, ExitCode> {
    sealpost_store::Role::parse(role).ok_or_else(|| {
        let roles: Vec<&str> = sealpost_store::Role::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        eprintln!(
            "sealpost: unknown role {role:?}; use one of: {}",
            roles.join(", ")
        );
        ExitCode::from(2)
    })
}

/// An administrator name on the command line, or what a name may be.
fn admin_name_arg(name: &str) -> Result<sealpost_store::console::AdminName, ExitCode> {
    sealpost_store::console::AdminName::parse(name).map_err(|e| {
        eprintln!("sealpost: {e}");
        ExitCode::from(2)
    })
}

fn admin_command(command: AdminCommand) -> ExitCode {
    use sealpost::administrators;
    use sealpost_store::ConsoleStore;
    use sealpost_store::audit::Actor;
    match command {
        AdminCommand::Create { name, role, config } => {
            let (name, role) = match (admin_name_arg(&name), role_arg(&role)) {
                (Ok(name), Ok(role)) => (name, role),
                (Err(code), _) | (_, Err(code)) => return code,
            };
            with_admin_store(config, move |store| {
                Box::pin(async move {
                    let password = administrators::create(&store, name.clone(), role, Actor::cli())
                        .await
                        .map_err(|e| e.to_string())?;
                    println!("{}", password.expose());
                    eprintln!(
                        "Created administrator {name} ({}). The password above is shown only now \
                         and must be changed at the first sign-in.",
                        role.as_str()
                    );
                    Ok(())
                })
            })
        }
        AdminCommand::ResetPassword { name, config } => {
            let name = match admin_name_arg(&name) {
                Ok(name) => name,
                Err(code) => return code,
            };
            with_admin_store(config, move |store| {
                Box::pin(async move {
                    let password =
                        administrators::reset_password(&store, name.clone(), Actor::cli())
                            .await
                            .map_err(|e| e.to_string())?;
                    println!("{}", password.expose());
                    eprintln!(
                        "New one-time password for {name}, shown only now; their sessions ended. \
                         It must be changed at the next sign-in."
                    );
                    if store
                        .administrator(&name)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_some_and(|a| a.totp)
                    {
                        eprintln!(
                            "Two-step sign-in stays on for {name}: they still need their app's \
                             code (or a recovery code). If the device is lost too, run \
                             `sealpost admin reset-totp {name}`."
                        );
                    }
                    Ok(())
                })
            })
        }
        AdminCommand::ResetTotp { name, config } => {
            let name = match admin_name_arg(&name) {
                Ok(name) => name,
                Err(code) => return code,
            };
            with_admin_store(config, move |store| {
                Box::pin(async move {
                    use sealpost_store::console::TotpOff;
                    if store
                        .administrator(&name)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_none()
                    {
                        return Err(format!(
                            "there is no administrator named {name} (see `sealpost admin list`)"
                        ));
                    }
                    let was_on = store
                        .disable_admin_totp(&name, TotpOff::Reset, Actor::cli())
                        .await
                        .map_err(|e| e.to_string())?;
                    if was_on {
                        eprintln!(
                            "Two-step sign-in is off for {name}; they sign in with the password \
                             alone and can turn it on again from their account page."
                        );
                    } else {
                        eprintln!("{name} had no two-step sign-in; nothing changed.");
                    }
                    Ok(())
                })
            })
        }
        AdminCommand::List { config } => with_admin_store(config, |store| {
            Box::pin(async move {
                let all = store.administrators().await.map_err(|e| e.to_string())?;
                println!(
                    "{:<24}  {:<14}  {:<20}  {:<9}  TWO-STEP",
                    "NAME", "ROLE", "LAST SIGN-IN", "PASSWORD"
                );
                for a in all {
                    println!(
                        "{:<24}  {:<14}  {:<20}  {:<9}  {}",
                        a.name.as_str(),
                        a.role.as_str(),
                        a.last_sign_in_at
                            .map(sealpost_store::rfc3339)
                            .unwrap_or_else(|| "never".into()),
                        if a.must_change_password {
                            "one-time"
                        } else {
                            "set"
                        },
                        if a.totp { "on" } else { "off" },
                    );
                }
                Ok(())
            })
        }),
        AdminCommand::Remove { name, config } => {
            let name = match admin_name_arg(&name) {
                Ok(name) => name,
                Err(code) => return code,
            };
            with_admin_store(config, move |store| {
                Box::pin(async move {
                    match store.remove_administrator(&name, Actor::cli()).await {
                        Ok(true) => {
                            eprintln!("Removed administrator {name}; their sessions ended.");
                            Ok(())
                        }
                        Ok(false) => Err(format!(
                            "there is no administrator named {name} (see `sealpost admin list`)"
                        )),
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
        }
    }
}

fn apikey_create(path: Option<PathBuf>, role: &str, name: &str) -> ExitCode {
    use sealpost_store::audit::Actor;
    let role = match role_arg(role) {
        Ok(role) => role,
        Err(code) => return code,
    };
    let name = name.to_owned();
    with_admin_store(path, move |store| {
        Box::pin(async move {
            use sealpost_store::AdminStore;
            let key = sealpost_web::auth::generate_api_key(role, &name);
            store
                .create_api_key(key.record, Actor::cli())
                .await
                .map_err(|e| format!("cannot store the key: {e}"))?;
            println!("{}", key.token);
            eprintln!(
                "Created a {} API key. It is shown only now; use it as 'Authorization: Bearer <key>'.",
                role.as_str()
            );
            Ok(())
        })
    })
}

fn banner(config: &Config, app: &Application) {
    println!("sealpost {} is running", env!("CARGO_PKG_VERSION"));
    println!("  SMTP:      {}", join(&app.smtp_addrs));
    if !app.submission_addrs.is_empty() {
        println!(
            "  submission: {} (STARTTLS, then AUTH PLAIN/LOGIN)",
            join(&app.submission_addrs)
        );
    }
    if !app.submission_tls_addrs.is_empty() {
        println!(
            "  submission: {} (implicit TLS, AUTH PLAIN/LOGIN)",
            join(&app.submission_tls_addrs)
        );
    }
    println!(
        "  admin:     http://{} (GET /health, GET /metrics, REST API at /api/v1)",
        app.admin_addr
    );
    println!(
        "  console:   {}/console (administrators sign in here)",
        app.console_url
    );
    println!(
        "  portal:    {} (recipients' links; listening on {})",
        app.portal_url, app.portal_addr
    );
    if let Some((name, password)) = &app.first_run_admin {
        println!("  first run: created the console administrator {name} (role super_admin),");
        println!("             one-time password (change it at the first sign-in):");
        println!("               {}", password.expose());
    }
    if let Some(key) = &app.first_run_api_key {
        println!("  first run: created an administrator API key (role super_admin).");
        println!("             It is shown only now; store it somewhere safe:");
        println!("               {key}");
        println!(
            "             Try: curl -H 'Authorization: Bearer {key}' http://{}/api/v1/policies",
            app.admin_addr
        );
    }
    println!(
        "  data:      {} ({})",
        config.data_dir.display(),
        config.database_url
    );
    match std::env::var_os(sealpost::keys::MASTER_KEY_ENV) {
        Some(v) if !v.is_empty() => {
            println!(
                "  vault:     master keys from {}",
                sealpost::keys::MASTER_KEY_ENV
            )
        }
        _ => println!(
            "  vault:     master key file {} (back it up, apart from the database)",
            config.vault.master_key_file.display()
        ),
    }
    match &app.certificate {
        CertificateSource::Generated(p) => {
            println!("  STARTTLS:  new self-signed certificate {}", p.display())
        }
        CertificateSource::Existing(p) => {
            println!("  STARTTLS:  self-signed certificate {}", p.display())
        }
        CertificateSource::Configured(p) => println!("  STARTTLS:  {}", p.display()),
    }
    println!(
        "  relaying for {} to {}",
        join(&config.smtp.relay_networks.iter().collect::<Vec<_>>()),
        config
            .relay
            .next_hop
            .as_ref()
            .map_or("recipients' MX hosts".to_owned(), |h| format!(
                "next hop {h}"
            ))
    );
}

/// Everything the gateway creates is for its own user only. The store and
/// the TLS code set 0600 and 0700 explicitly where they create files; this
/// catches what they do not (a file SQLite or a library creates).
fn private_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Raises the soft open-files limit to the hard limit: every SMTP
/// connection is a file descriptor, and distributions' default soft limit
/// (1024) is far below `smtp.max_connections`.
fn raise_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if (limit as usize) < max_connections => tracing::warn!(
            open_files = limit,
            max_connections,
            "the open-files limit is below smtp.max_connections; raise it (ulimit -n, LimitNOFILE=)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-files limit"),
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    // Colour codes only for a terminal: in a log file or journal they are
    // noise that breaks grep.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Registers for SIGTERM at once (a signal that arrives later, even
/// before the returned future is first polled, is kept) and returns the
/// future that completes on SIGTERM or Ctrl-C. Call it inside the runtime.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}
