//! Wiring: build every part from a [`Config`] and run them together.
//!
//! [`Application::build`] binds every listener (so tests can ask for port
//! 0 and read the real ports back), opens the store and starts nothing;
//! [`Application::run_until_stopped`] runs the SMTP listeners, the queue
//! worker and the admin HTTP server until a stop signal or until any of
//! them exits, then shuts the rest down gracefully.
//!
//! The queue worker runs on a thread of its own (see
//! [`run_delivery_thread`]); everything else shares the main runtime.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::Context;
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

use sealpost_intake::{Intake, IntakeSettings};
use sealpost_policy::PolicySet;
use sealpost_queue::{QueueConfig, QueueControl, RetrySchedule, Worker};
use sealpost_secure::plan::SecureSettings;
use sealpost_smtp::{
    inbound::{self, Inbound, InboundConfig, busy_poll::BusyPoll},
    outbound::{ConfiguredHops, Delivery, OutboundConfig},
};
use sealpost_store::{AdminStore, Role, SecureStore, SqliteStore, Store};
use sealpost_vault::Vault;
use sealpost_web::{FileRules, PolicyService, api::ApiState, auth::generate_api_key};

use crate::{config::Config, keys, tls};

/// Creates the data directory 0700, or takes group and other permissions
/// away from an existing one: it holds the database, the spool, the TLS
/// key and the master key, and earlier versions created it 0755.
fn private_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use sealpost_store::private;
    let context = |what: &str| {
        format!(
            "cannot {what} data directory {} (server.data_dir)",
            dir.display()
        )
    };
    private::create_dir(dir).with_context(|| context("create"))?;
    if private::restrict(dir).with_context(|| context("restrict the permissions of"))? {
        tracing::info!(dir = %dir.display(), "made the data directory private (0700)");
    }
    Ok(())
}

/// The portal URL notification links use: `portal.url`, except that the
/// default for a loopback listener on port 0 (tests, ad-hoc runs) takes
/// the port actually bound, so its links work.
fn bound_portal_url(config: &Config, bound: SocketAddr) -> String {
    if config.portal.listen.port() == 0 && config.portal.url == "http://localhost:0" {
        format!("http://localhost:{}", bound.port())
    } else {
        config.portal.url.clone()
    }
}

/// The console's origin: `admin.url`, except that a listener on port 0
/// (tests) names the port it was given.
fn console_url(config: &Config, bound: SocketAddr) -> String {
    match config.admin_url.strip_suffix("://localhost:0") {
        Some(scheme) if config.admin_listen.port() == 0 => {
            format!("{scheme}://localhost:{}", bound.port())
        }
        _ => config.admin_url.clone(),
    }
}

/// The configuration file's branding (`[portal]`), the logo read once,
/// here: the defaults under what administrators store.
fn file_branding(config: &Config) -> anyhow::Result<sealpost_web::portal::Branding> {
    let b = &config.portal.branding;
    let logo = match &b.logo_file {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading {} (portal.logo_file)", path.display()))?;
            let extension = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            let content_type = match extension.as_str() {
                "svg" => "image/svg+xml",
                "png" => "image/png",
                _ => "image/jpeg",
            };
            Some((bytes, content_type))
        }
        None => None,
    };
    Ok(sealpost_web::portal::Branding {
        product_name: b.product_name.clone(),
        logo,
        accent_color: b.accent_color.clone(),
        disclaimer: b.disclaimer.clone(),
        support_contact: b.support_contact.clone(),
    })
}

/// The portal's state from `[portal]`: its URL, who may forward, and the
/// file's branding under the live one of `deps`.
fn portal_state(
    config: &Config,
    url: &str,
    tls: bool,
    branding: sealpost_web::portal::Branding,
    deps: sealpost_web::portal::PortalDeps,
) -> anyhow::Result<sealpost_web::portal::PortalState> {
    use sealpost_web::auth::{limit::Backoff, session::Timeouts};
    use sealpost_web::portal::{PortalSettings, PortalState, Reach};
    let state = PortalState::new(
        PortalSettings {
            url: url.to_owned(),
            hostname: config.hostname.clone(),
            registration_link_ttl: config.portal.registration_link_ttl,
            reset_link_ttl: config.portal.reset_link_ttl,
            sessions: Timeouts {
                idle: config.portal.session_idle,
                absolute: config.portal.session_absolute,
            },
            backoff: Backoff::default(),
            max_upload: config.portal.max_upload,
            reach: Reach {
                tls,
                trusted_proxies: config.portal.trusted_proxies.clone(),
            },
            branding,
        },
        deps,
    )
    .context("portal.url")?;
    Ok(state)
}

/// What the portal reaches: its side of the store, an outbox into the
/// relay queue, message content (unsealed by the store), the definitions
/// from the live policy (with read receipts at first opening), the per-IP
/// limit on password and link requests (20 a minute, bursts of 10).
fn portal_deps(
    sqlite: &Arc<SqliteStore>,
    store: &Arc<dyn Store>,
    policy: &Arc<ArcSwap<PolicySet>>,
    wakeup: &Arc<Notify>,
    queue_lifetime: Duration,
    secure_settings: &SecureSettings,
    replies: sealpost_web::portal::Replies,
) -> sealpost_web::portal::PortalDeps {
    use std::num::NonZeroU32;
    sealpost_web::portal::PortalDeps {
        store: sqlite.clone(),
        outbox: Arc::new(sealpost_web::portal::QueueOutbox {
            store: store.clone(),
            wakeup: wakeup.clone(),
            queue_lifetime,
        }),
        rate_limit: Arc::new(sealpost_web::auth::limit::IpRateLimit::new(
            NonZeroU32::new(20).expect("non-zero"),
            NonZeroU32::new(10).expect("non-zero"),
        )),
        content: Arc::new(sealpost_web::portal::StoreContent(store.clone())),
        definitions: Arc::new(sealpost_web::portal::LiveDefinitions {
            secure: sqlite.clone(),
            policy: policy.clone(),
            settings: secure_settings.clone(),
        }),
        replies,
        branding: None,
    }
}

/// Binds the submission listeners (`smtp.submission_listen`, then
/// `smtp.submission_tls_listen`).
async fn bind_submission(config: &Config) -> anyhow::Result<(Vec<TcpListener>, Vec<TcpListener>)> {
    let mut bound = (Vec::new(), Vec::new());
    for (addrs, key, into) in [
        (
            &config.smtp.submission.listen,
            "smtp.submission_listen",
            &mut bound.0,
        ),
        (
            &config.smtp.submission.tls_listen,
            "smtp.submission_tls_listen",
            &mut bound.1,
        ),
    ] {
        for addr in addrs {
            into.push(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} ({key})"))?,
            );
        }
    }
    Ok(bound)
}

/// Secure recipients ended per expiry commit.
const EXPIRY_BATCH: usize = 1000;

/// How long a graceful shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A built gateway, ready to run.
pub struct Application {
    pub smtp_addrs: Vec<SocketAddr>,
    /// The submission listeners (`smtp.submission_listen`: STARTTLS, then
    /// AUTH) and (`smtp.submission_tls_listen`: implicit TLS), as bound.
    pub submission_addrs: Vec<SocketAddr>,
    pub submission_tls_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    pub store: Arc<dyn Store>,
    pub secure: Arc<dyn SecureStore>,
    /// The console's administrators and sessions.
    pub console: Arc<dyn sealpost_store::ConsoleStore>,
    pub worker: Worker,
    pub policy: Arc<ArcSwap<PolicySet>>,
    pub certificate: tls::CertificateSource,
    /// On the first start only: the super-admin API key created for the
    /// operator (shown once; only its hash is stored).
    pub first_run_api_key: Option<String>,
    /// The console administrator created on the first start, with its
    /// one-time password (None once any administrator exists).
    pub first_run_admin: Option<(
        sealpost_store::console::AdminName,
        sealpost_web::auth::password::Password,
    )>,
    /// The recipients' portal, and the URL its links use.
    pub portal_addr: SocketAddr,
    pub portal_url: String,
    /// The console's origin (`admin.url`, or the bound port for port 0).
    pub console_url: String,
    smtp_listeners: Vec<TcpListener>,
    submission_listeners: Vec<TcpListener>,
    submission_tls_listeners: Vec<TcpListener>,
    /// The sessions of the submission listeners (AUTH required); `None`
    /// when none is configured.
    submission: Option<Arc<Inbound>>,
    admin_listener: TcpListener,
    portal_listener: TcpListener,
    portal: sealpost_web::portal::PortalState,
    portal_tls: Option<tokio_rustls::TlsAcceptor>,
    admin_tls: Option<tokio_rustls::TlsAcceptor>,
    portal_threads: usize,
    console_state: sealpost_web::console::ConsoleState,
    inbound: Arc<Inbound>,
    metrics: PrometheusHandle,
    api: ApiState,
    expiry_interval: Duration,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("smtp_addrs", &self.smtp_addrs)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

/// The process-wide Prometheus recorder (installed once; later calls get
/// the same handle, so several applications can live in one test process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

impl Application {
    /// Opens the store, loads TLS material and binds every listener.
    ///
    /// # Errors
    /// A listener that cannot bind (named with its address and key), an
    /// unusable data directory, database or certificate.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        private_data_dir(&config.data_dir)?;
        let keyring = keys::load_keyring(&config)?;
        if let Some(warning) = keys::key_placement_warning(&config) {
            tracing::warn!("{warning}");
        }
        let vault = Arc::new(Vault::new(keyring));
        let sqlite = Arc::new(
            SqliteStore::open_url(
                &config.database_url,
                &config.data_dir.join("spool"),
                vault.clone(),
            )
            .await
            .with_context(|| {
                format!(
                    "cannot open database {} (database.url)",
                    config.database_url
                )
            })?,
        );
        let store: Arc<dyn Store> = sqlite.clone();
        let secure: Arc<dyn SecureStore> = sqlite.clone();
        let admin: Arc<dyn AdminStore> = sqlite.clone();
        let (acceptor, certificate) = tls::acceptor(&config)?;

        let mut smtp_listeners = Vec::new();
        for addr in &config.smtp.listen {
            smtp_listeners.push(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (smtp.listen)"))?,
            );
        }
        let (submission_listeners, submission_tls_listeners) = bind_submission(&config).await?;
        let admin_listener = TcpListener::bind(config.admin_listen)
            .await
            .with_context(|| format!("cannot listen on {} (admin.listen)", config.admin_listen))?;
        let smtp_addrs = smtp_listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<Result<_, _>>()?;
        let admin_addr = admin_listener.local_addr()?;
        let portal_listener = TcpListener::bind(config.portal.listen)
            .await
            .with_context(|| {
                format!("cannot listen on {} (portal.listen)", config.portal.listen)
            })?;
        let portal_addr = portal_listener.local_addr()?;
        let portal_url = bound_portal_url(&config, portal_addr);
        let admin_tls = match &config.admin_tls {
            Some((cert, key)) => Some(tls::load(cert, key, "admin", &[b"http/1.1"])?),
            None => None,
        };
        let portal_tls = match &config.portal.tls {
            Some((cert, key)) => Some(tls::load(cert, key, "portal", &[b"http/1.1"])?),
            None => None,
        };
        let policy = Arc::new(ArcSwap::from_pointee(PolicySet::with_internal_domains(
            config.internal_domains.clone(),
        )));
        let policy_service = Arc::new(PolicyService::new(
            admin.clone(),
            policy.clone(),
            FileRules {
                internal_domains: config.internal_domains.iter().cloned().collect(),
                max_expiry_days: config.vault.retention_days(),
                subject_tag: config.secure.subject_tag.clone(),
                subject_tag_definition: config.secure.subject_tag_definition.clone(),
            },
        ));
        crate::stored_check::fit_untouched_default(&config, admin.as_ref()).await?;
        crate::stored_check::refuse_conflicts(&config, admin.as_ref()).await?;
        policy_service
            .load()
            .await
            .context("the stored policy configuration does not validate")?;
        let first_run_api_key = if admin.has_api_keys().await? {
            None
        } else {
            let key = generate_api_key(Role::SuperAdmin, "first-run administrator");
            admin
                .create_api_key(
                    key.record,
                    sealpost_store::audit::Actor::system("first start"),
                )
                .await?;
            Some(key.token)
        };
        let first_run_admin = crate::administrators::ensure_first(sqlite.as_ref())
            .await
            .context("creating the first console administrator")?;
        let file_branding = file_branding(&config)?;
        // Each node follows the stored branding's version, checked at most
        // once a second per node: a change shows everywhere that soon.
        let live_branding = Arc::new(sealpost_web::branding::LiveBranding::new(
            file_branding.clone(),
            sqlite.clone(),
            Duration::from_secs(1),
        ));
        let branding = Arc::new(sealpost_web::branding::BrandingService::new(
            sqlite.clone(),
            live_branding.clone(),
        ));
        let console_state = sealpost_web::console::ConsoleState::new(
            sealpost_web::console::ConsoleSettings {
                reach: sealpost_web::portal::Reach {
                    tls: config.admin_tls.is_some(),
                    trusted_proxies: config.admin_trusted_proxies.clone(),
                },
                retention: config.vault.retention,
                ..sealpost_web::console::ConsoleSettings::new(console_url(&config, admin_addr))
            },
            sqlite.clone(),
            sqlite.clone(),
            secure.clone(),
            policy_service.clone(),
            branding.clone(),
        )
        .context("admin.url")?;
        let wakeup = Arc::new(Notify::new());
        let secure_settings = SecureSettings {
            hostname: config.hostname.clone(),
            portal_url: portal_url.clone(),
            subject_tag: config.secure.subject_tag.clone(),
            subject_tag_definition: config.secure.subject_tag_definition.clone(),
            retention: config.vault.retention,
            queue_lifetime: config.relay.queue_lifetime,
            templates: Default::default(),
        };
        let delivery = Arc::new(Delivery::new(OutboundConfig {
            hostname: config.hostname.clone(),
            connect_timeout: config.relay.connect_timeout,
            opportunistic_tls: config.relay.opportunistic_tls,
            dns_servers: config.relay.dns_servers.clone(),
            mx_port: config.relay.mx_port,
            tls_policy: config.relay.tls.policy.clone(),
            tls_ca_file: config.relay.tls.ca_file.clone(),
            mta_sts: config.relay.tls.mta_sts,
            mta_sts_port: config.relay.tls.mta_sts_port,
            mta_sts_cache: Some(config.data_dir.join("mta-sts.cache")),
            ..OutboundConfig::default()
        }));
        let queue_config = QueueConfig {
            hostname: config.hostname.clone(),
            retry: RetrySchedule::new(config.relay.retry_schedule.clone())
                .context("relay.retry_schedule needs at least one non-zero delay")?,
            queue_lifetime: config.relay.queue_lifetime,
            hops: ConfiguredHops {
                smart_host: config.relay.next_hop.clone(),
                internal: config.relay.internal_next_hop.clone(),
            },
            max_connections_per_hop: config.relay.max_connections_per_hop,
            dkim: config.dkim.signer.clone(),
            dkim_sign_relayed: config.dkim.sign_relayed,
            lease_duration: config.relay.lease_duration,
            delay_warning: config.relay.delay_warning,
            ..QueueConfig::default()
        };
        let worker = Worker::new(
            store.clone(),
            delivery,
            policy.clone(),
            queue_config.clone(),
            wakeup.clone(),
        );
        // What administrators do to the queue, through the API, the
        // console and the CLI.
        let queue_control =
            QueueControl::new(sqlite.clone(), policy.clone(), queue_config, wakeup.clone());
        let console_state = console_state.with_queue(queue_control.clone());
        // The way in for SMTP and for the portal's replies.
        let intake = Arc::new(Intake {
            settings: IntakeSettings {
                secure: secure_settings.clone(),
                queue_lifetime: config.relay.queue_lifetime,
            },
            store: store.clone(),
            policy: policy.clone(),
            handoff: Some(worker.handoff()),
            queue_wakeup: wakeup.clone(),
        });
        // The portal's replies enter through the same intake as SMTP.
        let replies = sealpost_web::portal::Replies {
            intake: intake.clone(),
            originals: Arc::new(sealpost_web::portal::StoreOriginals {
                store: store.clone(),
                policy: policy.clone(),
            }),
        };
        let portal = portal_state(
            &config,
            &portal_url,
            portal_tls.is_some(),
            file_branding,
            sealpost_web::portal::PortalDeps {
                // The console's live branding: a change made here shows at once.
                branding: Some(live_branding),
                ..portal_deps(
                    &sqlite,
                    &store,
                    &policy,
                    &wakeup,
                    config.relay.queue_lifetime,
                    &secure_settings,
                    replies,
                )
            },
        )?;
        let inbound = Arc::new(Inbound {
            config: InboundConfig {
                hostname: config.hostname.clone(),
                relay_networks: config.smtp.relay_networks.clone(),
                xforward_hosts: config.smtp.xforward_hosts.clone(),
                max_message_size: config.smtp.max_message_size as usize,
                max_recipients: config.smtp.max_recipients,
                idle_timeout: config.smtp.idle_timeout,
                max_connections: config.smtp.max_connections,
                shutdown_grace: config.smtp.shutdown_grace,
                ..InboundConfig::default()
            },
            intake,
            tls: Some(acceptor.clone()),
            open_transactions: Default::default(),
            busy_poll: BusyPoll::new(config.smtp.busy_poll),
            submission: None,
        });
        // Submission: the same limits, intake, certificate and transaction
        // count as port 25; AUTH instead of relay_networks, no XFORWARD.
        let submission = config.smtp.submission.enabled().then(|| {
            let accounts = Arc::new(crate::submission::StoreAccounts::new(sqlite.clone()));
            Arc::new(Inbound {
                config: inbound.config.clone(),
                intake: inbound.intake.clone(),
                tls: Some(acceptor),
                open_transactions: inbound.open_transactions.clone(),
                busy_poll: inbound.busy_poll.clone(),
                submission: Some(Arc::new(inbound::auth::SubmissionAuth::new(
                    accounts,
                    config.smtp.submission.guard.clone(),
                ))),
            })
        });
        let local = |l: &Vec<TcpListener>| -> std::io::Result<Vec<SocketAddr>> {
            l.iter().map(TcpListener::local_addr).collect()
        };
        Ok(Application {
            smtp_addrs,
            submission_addrs: local(&submission_listeners)?,
            submission_tls_addrs: local(&submission_tls_listeners)?,
            submission_listeners,
            submission_tls_listeners,
            submission,
            admin_addr,
            store,
            secure: secure.clone(),
            console: sqlite.clone(),
            worker,
            policy,
            certificate,
            first_run_api_key,
            first_run_admin,
            portal_addr,
            portal_url,
            console_url: console_url(&config, admin_addr),
            smtp_listeners,
            admin_listener,
            portal_listener,
            portal,
            portal_tls,
            admin_tls,
            portal_threads: config.portal.worker_threads,
            console_state,
            inbound,
            metrics: metrics_handle(),
            api: ApiState {
                admin,
                policy: policy_service,
                secure,
                retention: config.vault.retention,
                queue: queue_control.clone(),
                branding,
                smtp_accounts: sqlite.clone(),
                keys: sealpost_web::key_rotation::KeyRotation::new(
                    sqlite.clone(),
                    vault,
                    keys::key_file(&config),
                    keys::ONLINE_REWRAP_BATCH,
                ),
            },
            expiry_interval: config.vault.expiry_interval,
            shutdown: CancellationToken::new(),
        })
    }

    /// The SMTP listeners' busy poller (`smtp.busy_poll`).
    pub fn busy_poll(&self) -> Arc<BusyPoll> {
        self.inbound.busy_poll.clone()
    }

    /// A token that stops the application when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs every part until `stop` completes or a part exits, then shuts
    /// down gracefully (sessions finish their transaction and say 421,
    /// deliveries in flight finish) within a grace period.
    ///
    /// # Errors
    /// The first part that failed, named.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let mut tasks: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
        for listener in self.smtp_listeners {
            let (inbound, shutdown) = (self.inbound.clone(), shutdown.clone());
            tasks.spawn(async move {
                (
                    "SMTP listener",
                    inbound::serve(listener, inbound, shutdown)
                        .await
                        .map_err(Into::into),
                )
            });
        }
        if let Some(submission) = &self.submission {
            for (listener, implicit_tls) in self
                .submission_listeners
                .into_iter()
                .map(|l| (l, false))
                .chain(self.submission_tls_listeners.into_iter().map(|l| (l, true)))
            {
                let (submission, shutdown) = (submission.clone(), shutdown.clone());
                tasks.spawn(async move {
                    let served = if implicit_tls {
                        inbound::serve_implicit_tls(listener, submission, shutdown).await
                    } else {
                        inbound::serve(listener, submission, shutdown).await
                    };
                    ("SMTP submission listener", served.map_err(Into::into))
                });
            }
        }
        {
            // A rotation a stop interrupted (or a version added to
            // SEALPOST_MASTER_KEY) is finished in the background.
            let keys = self.api.keys.clone();
            tokio::spawn(async move {
                match keys.resume_if_needed().await {
                    Ok(true) => tracing::info!(
                        "message keys are on an older master key version: re-wrapping them in the background"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "cannot resume the key rotation"),
                }
            });
        }
        {
            let finished = run_delivery_thread(self.worker.clone(), shutdown.clone())
                .context("starting the delivery thread")?;
            tasks.spawn(async move {
                match finished.await {
                    Ok(()) => ("queue worker", Ok(())),
                    Err(_) => ("queue worker", Err(anyhow::anyhow!("panicked"))),
                }
            });
        }
        {
            let state = sealpost_web::AppState {
                store: self.store.clone(),
                api: self.api.clone(),
                metrics: self.metrics.clone(),
                console: self.console_state.clone(),
            };
            let shutdown = shutdown.clone();
            let listener = self.admin_listener;
            let admin_tls = self.admin_tls;
            tasks.spawn(async move {
                (
                    "admin HTTP server",
                    sealpost_web::serve(listener, admin_tls, state, shutdown)
                        .await
                        .map_err(Into::into),
                )
            });
        }
        {
            let finished = run_portal_thread(
                self.portal_listener,
                self.portal_tls,
                self.portal,
                self.portal_threads,
                shutdown.clone(),
            )
            .context("starting the portal's runtime")?;
            tasks.spawn(async move {
                match finished.await {
                    Ok(result) => ("portal", result.map_err(Into::into)),
                    Err(_) => ("portal", Err(anyhow::anyhow!("panicked"))),
                }
            });
        }
        {
            let (secure, shutdown) = (self.secure.clone(), shutdown.clone());
            let interval = self.expiry_interval;
            tasks.spawn(async move {
                expire_loop(secure, interval, shutdown).await;
                ("expiry job", Ok(()))
            });
        }
        {
            let (metrics, shutdown) = (self.metrics.clone(), shutdown.clone());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return ("metrics upkeep", Ok(())),
                        _ = tokio::time::sleep(Duration::from_secs(5)) => metrics.run_upkeep(),
                    }
                }
            });
        }

        let mut first_error = None;
        tokio::select! {
            biased;
            _ = stop => tracing::info!("stop requested; shutting down"),
            _ = shutdown.cancelled() => {}
            Some(joined) = tasks.join_next() => {
                // Parts end on their own only when shutdown was requested
                // (then this is the race with the branch above) or on error.
                if !shutdown.is_cancelled() {
                    let (name, result) = joined.unwrap_or(("a task", Err(anyhow::anyhow!("panicked"))));
                    let e = result.err().unwrap_or_else(|| anyhow::anyhow!("stopped unexpectedly"));
                    tracing::error!(part = name, error = %e, "a part of the gateway exited; shutting down");
                    first_error = Some(e.context(format!("{name} failed")));
                }
            }
        }
        shutdown.cancel();
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(joined) = tasks.join_next().await {
                if let Ok((name, Err(e))) = joined {
                    tracing::warn!(part = name, error = %e, "error during shutdown");
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!("graceful shutdown took too long; exiting");
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Ends expired secure deliveries and destroys the content nobody needs
/// any more, every `interval`, in bounded batches.
/// Starts the queue worker on a thread with a runtime of its own; the
/// receiver completes when the worker has stopped (an error: it panicked).
///
/// Deliveries then never hold up an SMTP session. On one shared thread
/// they did: the `250` for a message waited while the worker sent other
/// messages on, and the next client connection waited in the backlog
/// (`bench/RESULTS.md`: +22% at one session, nothing lost at twenty).
/// Postfix separates its `smtpd` and `smtp` processes for the same reason.
fn run_delivery_thread(
    worker: Worker,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("sealpost-delivery-io")
        .build()?;
    let (finished, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sealpost-delivery".into())
        .spawn(move || {
            runtime.block_on(worker.run(shutdown));
            let _ = finished.send(());
        })?;
    Ok(receiver)
}

/// Serves the portal on a multi-threaded runtime of its own
/// (`portal.worker_threads`); the receiver gets the server's result when it
/// has stopped.
///
/// Page views are CPU work (opening, parsing and rendering a message). On
/// the SMTP runtime, which has half the cores so commits and deliveries
/// keep theirs, they queued behind each other on one thread: in
/// `bench/portal.sh` the message page used about one core of two
/// (`bench/RESULTS.md`, portal). Apart, neither face waits for the other's
/// tasks.
fn run_portal_thread(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: sealpost_web::portal::PortalState,
    threads: usize,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::sync::oneshot::Receiver<std::io::Result<()>>> {
    // The listener was bound on the main runtime; its socket moves to the
    // portal's (into_std keeps it non-blocking).
    let listener = listener.into_std()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .thread_name("sealpost-portal-io")
        .build()?;
    let (finished, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("sealpost-portal".into())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                sealpost_web::portal::listener::serve(listener, tls, state, shutdown).await
            });
            let _ = finished.send(result);
            // Handlers still blocked on the store get a moment, not forever.
            runtime.shutdown_timeout(SHUTDOWN_GRACE);
        })?;
    Ok(receiver)
}

async fn expire_loop(
    secure: Arc<dyn SecureStore>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        // Bounded: a backlog of a million expiries is 1,000 commits.
        for _ in 0..1000 {
            match secure
                .expire_due(std::time::SystemTime::now(), EXPIRY_BATCH)
                .await
            {
                Ok(0) => break,
                Ok(n) => {
                    metrics::counter!("sealpost_secure_expired_total").increment(n as u64);
                    tracing::info!(
                        recipients = n,
                        "secure deliveries expired; content destroyed where no one needs it"
                    );
                    if n < EXPIRY_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "expiring secure messages failed; will retry");
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
