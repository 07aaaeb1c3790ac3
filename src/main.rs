//! The `berth` binary: parses the command line, runs one verb, maps errors to
//! exit codes.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use berth::cli::{Cli, Command};
use berth::commands;
use berth::printer::Printer;
use berth::settings;
use clap::Parser;

fn main() -> ExitCode {
    // The container init is this binary re-executed; it must run before
    // anything else (no threads, no parsing).
    berth_runtime::maybe_init();
    if berth::cli::runtime::invoked_as_runtime() {
        let cli = berth::cli::runtime::StandaloneCli::parse();
        return commands::runtime::main(cli.args.into_invocation());
    }
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    let printer = Printer;
    let mode = image_progress(cli.global.progress);
    let image = |action| commands::image::run(&printer, action, mode);
    let project_image = |action| {
        let project = settings::ProjectArgs::from(&cli.global);
        commands::image::run_project(&printer, &project, action, mode)
    };
    let result = match cli.command {
        Command::Config(args) => {
            let project = settings::ProjectArgs::from(&cli.global);
            let (services, what, stages) = settings::config_settings(args);
            commands::config::config(&printer, &project, &services, &what, stages)
        }
        Command::Up(args) => {
            let project = settings::ProjectArgs::from(&cli.global);
            return match commands::lifecycle::up(&project, &args, cli.global.dry_run) {
                Ok(code) => ExitCode::from(code),
                Err(err) => report(&err),
            };
        }
        Command::Down(args) => commands::lifecycle::down(&(&cli.global).into(), &args),
        Command::Exec(args) => {
            return match commands::lifecycle::exec(&(&cli.global).into(), &args) {
                Ok(code) => ExitCode::from(code),
                Err(err) => report(&err),
            }
        }
        Command::Create(args) => {
            let project = settings::ProjectArgs::from(&cli.global);
            commands::lifecycle::create(&project, args, cli.global.dry_run)
        }
        Command::Pause(args) => commands::lifecycle::pause(&(&cli.global).into(), &args, true),
        Command::Unpause(args) => commands::lifecycle::pause(&(&cli.global).into(), &args, false),
        Command::Top(args) => commands::lifecycle::top(&(&cli.global).into(), &args),
        Command::Run(args) => {
            return match commands::lifecycle::run(&(&cli.global).into(), args) {
                Ok(code) => ExitCode::from(code),
                Err(err) => report(&err),
            }
        }
        Command::Ls(args) => commands::lifecycle::ls(&args),
        Command::Cp(args) => commands::cp::cp(&(&cli.global).into(), &args),
        Command::Export(args) => commands::export::export(&(&cli.global).into(), &args),
        Command::Commit(args) => commands::export::commit(&(&cli.global).into(), &args),
        Command::Events(args) => commands::events::events(&(&cli.global).into(), &args),
        Command::Scale(args) => commands::scale::scale(&(&cli.global).into(), &args),
        Command::Stats(args) => commands::stats::stats(&(&cli.global).into(), &args),
        Command::Wait(args) => {
            return match commands::wait::wait(&(&cli.global).into(), &args) {
                Ok(code) => ExitCode::from(code),
                Err(err) => report(&err),
            }
        }
        Command::Port(args) => commands::lifecycle::port(&(&cli.global).into(), &args),
        Command::Ps(args) => commands::lifecycle::ps(&(&cli.global).into(), &args),
        Command::Logs(args) => commands::lifecycle::logs(&(&cli.global).into(), &args),
        Command::Start(args) => commands::lifecycle::start(&(&cli.global).into(), &args),
        Command::Stop(args) => commands::lifecycle::stop(&(&cli.global).into(), &args),
        Command::Restart(args) => commands::lifecycle::restart(&(&cli.global).into(), &args),
        Command::Kill(args) => commands::lifecycle::kill(&(&cli.global).into(), &args),
        Command::Rm(args) => commands::lifecycle::rm(&(&cli.global).into(), &args),
        Command::System(berth::cli::lifecycle::SystemCommand::Monitor { id, adopt }) => {
            commands::lifecycle::monitor(&id, adopt)
        }
        Command::System(berth::cli::lifecycle::SystemCommand::DnsServer) => {
            commands::lifecycle::dns_server()
        }
        Command::System(berth::cli::lifecycle::SystemCommand::PortProxy { pidfile, rules }) => {
            commands::lifecycle::port_proxy(&pidfile, &rules)
        }
        Command::Image(args) => image(args.into_action()),
        Command::Login(args) => image(args.into_action()),
        Command::Logout(args) => image(args.into_action()),
        Command::Pull(args) => project_image(args.into_action()),
        Command::Push(args) => project_image(args.into_action()),
        Command::Publish(args) => {
            let project = settings::ProjectArgs::from(&cli.global);
            let opts = match publish_options(args, cli.global.dry_run) {
                Ok(o) => o,
                Err(err) => return report(&err),
            };
            return match commands::publish::publish(&project, &opts) {
                Ok(code) => ExitCode::from(code),
                Err(err) => report(&err),
            };
        }
        Command::Images(args) => project_image(args.into_action()),
        Command::Runtime(args) => return commands::runtime::main((*args).into_invocation()),
        Command::Version(args) => commands::version::version(&printer, args.format, args.short),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

fn publish_options(
    args: berth::cli::lifecycle::PublishArgs,
    global_dry_run: bool,
) -> anyhow::Result<commands::publish::PublishOptions> {
    let oci_version = match args.oci_version.as_deref() {
        None | Some("") => None,
        Some(v) => Some(v.parse().map_err(anyhow::Error::msg)?),
    };
    Ok(commands::publish::PublishOptions {
        repository: args.repository,
        app: args.app,
        oci_version,
        resolve_image_digests: args.resolve_image_digests,
        with_env: args.with_env,
        yes: args.yes,
        dry_run: args.dry_run || global_dry_run,
        insecure_registry: args.insecure_registry,
    })
}

fn image_progress(p: berth::cli::Progress) -> commands::image::ProgressMode {
    use berth::cli::Progress;
    use commands::image::ProgressMode;
    match p {
        Progress::Auto => ProgressMode::Auto,
        Progress::Tty => ProgressMode::Tty,
        Progress::Plain | Progress::Json => ProgressMode::Plain,
        Progress::Quiet => ProgressMode::Quiet,
    }
}

/// `BERTH_LOG` (an `EnvFilter`) wins; else `--verbose` shows berth's debug
/// events, and the default only warnings.
fn init_tracing(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose {
        "warn,berth=debug,berth_runtime=debug,berth_network=debug"
    } else {
        "warn,netlink_packet_route=error"
    };
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}

/// Prints the error chain on one line and picks the exit code. A broken pipe
/// (`berth config | head`) is not an error.
fn report(err: &anyhow::Error) -> ExitCode {
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    // Library errors often print their cause too; say each part once.
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    eprintln!("{line}");
    ExitCode::from(1)
}
