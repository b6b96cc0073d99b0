//! The `weft server` and `weft ui` commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use weft_store::model::Role;

use crate::{Listen, Server};

/// The address `weft server` and `weft ui` listen on unless told.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8765";

/// The server's commands, beside the inspections of the `weft` command.
#[derive(Subcommand)]
pub enum Command {
    /// Serve the REST API and the dashboard (`weft server`), or manage its API keys.
    Server(ServerArguments),
    /// Serve the dashboard on this machine and open it, signed in (prints the link).
    Ui(UiArguments),
}

/// `weft server`: serve, or `weft server keys ...`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArguments {
    #[command(subcommand)]
    keys: Option<ServerCommand>,
    #[command(flatten)]
    listen: ListenArguments,
}

#[derive(Subcommand)]
enum ServerCommand {
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once, and only its hash is kept.
    Create {
        /// `viewer` (reads) or `editor` (reads, stops runs, tags versions, expires cache).
        #[arg(long)]
        role: Role,
        /// What the key is for.
        #[arg(long)]
        name: Option<String>,
        /// It stops working after this long (`30d`, `12h`); default: never.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<humantime::Duration>,
    },
    /// List the keys (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: requests and sessions made with it are refused from now on.
    Revoke {
        /// The key's id (as `list` shows it), or the whole key.
        id: String,
    },
}

#[derive(Args)]
struct ListenArguments {
    /// The address to listen on (default: `[server] address` of weft.toml, else
    /// 127.0.0.1:8765; port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    address: Option<String>,
    /// A PEM certificate chain, to speak HTTPS (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_certificate: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long, value_name = "FILE", requires = "tls_certificate")]
    tls_key: Option<PathBuf>,
}

/// `weft ui`.
#[derive(Args)]
pub struct UiArguments {
    #[command(flatten)]
    listen: ListenArguments,
    /// Only print the sign-in link; do not open a browser.
    #[arg(long)]
    no_browser: bool,
}

/// Runs one of the server's commands; its exit code.
pub fn run(command: Command, stack: Option<&str>) -> ExitCode {
    let result = match command {
        Command::Server(arguments) => match arguments.keys {
            Some(ServerCommand::Keys { command }) => keys(command, stack),
            None => serve(&arguments.listen, stack, None),
        },
        Command::Ui(arguments) => serve(&arguments.listen, stack, Some(!arguments.no_browser)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", weft_core::message::one_line(error.chain()));
            // No project here is a usage error, as for the inspections.
            let nothing_here = error
                .chain()
                .any(|cause| cause.is::<weft::config::NoProject>());
            ExitCode::from(if nothing_here { 2 } else { 1 })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weft-server")
        .build()
        .context("cannot start the server's runtime")
}

fn keys(command: KeysCommand, stack: Option<&str>) -> anyhow::Result<()> {
    let stores = weft::StoreConfig::discover_existing_on(stack)?;
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = weft_store::open(&stores.metadata, &stores.base).await?;
        match command {
            KeysCommand::Create {
                role,
                name,
                expires_in,
            } => {
                let expires_at = expires_in
                    .map(|duration| {
                        chrono::Duration::from_std(*duration)
                            .ok()
                            .and_then(|duration| chrono::Utc::now().checked_add_signed(duration))
                            .context("--expires-in is too far in the future")
                    })
                    .transpose()?;
                let created = crate::create_key(store.as_ref(), role, name, expires_at).await?;
                eprintln!(
                    "created {} key {}{}; it is shown once, keep it secret:",
                    created.record.role,
                    created.record.id,
                    created
                        .record
                        .expires_at
                        .map(|at| format!(" (expires {})", at.format("%Y-%m-%d %H:%M UTC")))
                        .unwrap_or_default()
                );
                println!("{}", created.key);
            }
            KeysCommand::List { json } => {
                let keys = store.api_keys().await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&keys)?);
                } else {
                    println!(
                        "{:<14} {:<7} {:<20} {:<17} {:<17} STATE",
                        "ID", "ROLE", "NAME", "CREATED", "LAST USED"
                    );
                    let now = chrono::Utc::now();
                    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
                        at.map_or("-".into(), |at| at.format("%Y-%m-%d %H:%M").to_string())
                    };
                    for key in keys {
                        let state = if key.revoked_at.is_some() {
                            "revoked"
                        } else if !key.usable(now) {
                            "expired"
                        } else {
                            "active"
                        };
                        let name: String = key
                            .name
                            .as_deref()
                            .unwrap_or("-")
                            .chars()
                            .map(|c| if c.is_control() { ' ' } else { c })
                            .take(20)
                            .collect();
                        println!(
                            "{:<14} {:<7} {:<20} {:<17} {:<17} {state}",
                            key.id,
                            key.role.as_str(),
                            name,
                            time(Some(key.created_at)),
                            time(key.last_used_at),
                        );
                    }
                }
            }
            KeysCommand::Revoke { id } => {
                // The whole key names its id too.
                let id = id
                    .strip_prefix("weft_")
                    .and_then(|rest| rest.get(..12))
                    .unwrap_or(&id)
                    .to_owned();
                let key = store.revoke_api_key(&id).await?;
                eprintln!("revoked key {}", key.id);
            }
        }
        Ok(())
    })
}

/// Serves until SIGINT or SIGTERM; `open` is `Some` for `weft ui` (whether to open a
/// browser at its one-time sign-in link).
fn serve(listen: &ListenArguments, stack: Option<&str>, open: Option<bool>) -> anyhow::Result<()> {
    let stores = weft::StoreConfig::discover_existing_on(stack)?;
    let current = std::env::current_dir().context("cannot read the current directory")?;
    let project = weft::config::Project::discover_from(&current)?;
    let settings = &project.server;
    let address_text = listen
        .address
        .clone()
        .or_else(|| settings.address.clone())
        .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
    let address: SocketAddr = address_text.parse().with_context(|| {
        format!("`{address_text}` is not an address to listen on (write it as 127.0.0.1:8765)")
    })?;
    let relative = |path: &PathBuf| project.root.join(path);
    let tls = match (&listen.tls_certificate, &listen.tls_key) {
        (Some(certificate), Some(key)) => Some((certificate.clone(), key.clone())),
        _ => match (&settings.tls_certificate, &settings.tls_key) {
            (Some(certificate), Some(key)) => Some((relative(certificate), relative(key))),
            (None, None) => None,
            _ => bail!(
                "the [server] table of weft.toml must set both tls_certificate and tls_key, or neither"
            ),
        },
    };
    if open.is_some() && !address.ip().is_loopback() {
        bail!(
            "`weft ui` serves this machine only: use a loopback address, or `weft server` with keys"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listen = Listen { address, tls };
    let runtime = runtime()?;
    runtime.block_on(async move {
        let server = Server::open(&stores, listen.tls.is_some()).await?;
        let token = open.map(|_| server.one_time_token());
        let ready = move |bound: SocketAddr| {
            let base = format!("{scheme}://{bound}");
            eprintln!("weft server listening on {base} (stores: {})", weft::config::redact_url(&stores.metadata));
            match &token {
                Some(token) => {
                    let link = format!("{base}/signin?token={token}");
                    println!("{link}");
                    eprintln!("open the link above to sign in (it works once, for 15 minutes)");
                    if open == Some(true) {
                        open_browser(&link);
                    }
                }
                None => eprintln!(
                    "sign in with an API key (`weft server keys create --role viewer`); API documentation at {base}/api/v1/openapi.json"
                ),
            }
        };
        server.serve(&listen, ready, shutdown_signal()).await
    })
}

/// Resolves on the first SIGINT or SIGTERM; a second one ends the process at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("stopping: finishing the requests in flight (again to stop at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        std::process::exit(130);
    });
}

/// Opens `link` in the desktop's browser, if there is one (`xdg-open`, `open`); silently
/// does nothing otherwise: the link is printed.
fn open_browser(link: &str) {
    for opener in ["xdg-open", "open"] {
        let spawned = std::process::Command::new(opener)
            .arg(link)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_ok() {
            return;
        }
    }
}
