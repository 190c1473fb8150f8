use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = eventtracker::cli::Cli::parse();
    match eventtracker::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain names the variable, file or entry at fault.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
