//! `squall feed`: the local stand-in for the public Wikipedia edit feed.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use squall_feed::{DataSet, FeedOptions, FeedServer, DEFAULT_SEED};

#[derive(clap::Args)]
pub struct FeedArgs {
    #[command(subcommand)]
    command: FeedCommand,
}

#[derive(clap::Subcommand)]
enum FeedCommand {
    /// Serve the bundled edit events over websocket and/or Server-Sent Events until Ctrl-C.
    Serve(ServeArgs),
    /// Print the bundled edit events as JSON lines (what the feed would send).
    Dump(DumpArgs),
    /// Publish the bundled edit events into a Kafka topic (JSON values, no key).
    Kafka(KafkaArgs),
}

#[derive(clap::Args)]
struct KafkaArgs {
    /// Bootstrap servers, host:port[,host:port...] (`make kafka-up` prints one).
    #[arg(long, value_name = "ADDR")]
    bootstrap: String,
    /// The topic (it must exist).
    #[arg(long)]
    topic: String,
    /// Events per second; 0 publishes as fast as the broker takes them.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// How many events, then exit once the broker acknowledged them (default: until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    /// First message index.
    #[arg(long, default_value_t = 0)]
    from: u64,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(clap::Args)]
struct DataArgs {
    /// Seed of the data set: the same seed gives the same events.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Make every K-th message malformed (0: none).
    #[arg(long, value_name = "K", default_value_t = 0)]
    malformed_every: u64,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Websocket address (loopback only), e.g. 127.0.0.1:9000.
    #[arg(long, value_name = "ADDR")]
    ws: Option<SocketAddr>,
    /// SSE address (loopback only), e.g. 127.0.0.1:9001.
    #[arg(long, value_name = "ADDR")]
    sse: Option<SocketAddr>,
    /// Events per second per connection; 0 sends as fast as the client reads.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Events per connection, then the connection idles (default: no end).
    #[arg(long)]
    count: Option<u64>,
    /// Load tests: send the first K messages over and over, rendered once up front.
    #[arg(long, value_name = "K")]
    repeat: Option<u64>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(clap::Args)]
struct DumpArgs {
    /// How many messages.
    #[arg(long, default_value_t = 10)]
    count: u64,
    /// First message index.
    #[arg(long, default_value_t = 0)]
    from: u64,
    #[command(flatten)]
    data: DataArgs,
}

impl DataArgs {
    fn data_set(&self) -> DataSet {
        DataSet::new(self.seed).with_malformed_every(self.malformed_every)
    }
}

pub fn run(args: FeedArgs) -> anyhow::Result<()> {
    match args.command {
        FeedCommand::Serve(a) => serve(a),
        FeedCommand::Dump(a) => dump(a),
        FeedCommand::Kafka(a) => kafka(a),
    }
}

fn kafka(args: KafkaArgs) -> anyhow::Result<()> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    let publish = squall_kafka::feed::Publish {
        bootstrap: args.bootstrap,
        topic: args.topic,
        rate: args.rate,
        count: args.count,
        from: args.from,
    };
    eprintln!(
        "feed: publishing to {} on {} ({}, seed {}); Ctrl-C to stop",
        publish.topic,
        publish.bootstrap,
        if args.rate == 0 {
            "unpaced".to_owned()
        } else {
            format!("{} events/s", args.rate)
        },
        args.data.seed
    );
    let sent = squall_kafka::feed::publish_edits(&publish, &args.data.data_set(), &stop)
        .with_context(|| format!("publishing to {}", publish.topic))?;
    println!("feed: {sent} events published to {}", publish.topic);
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("installing the Ctrl-C handler")?;
    let opts = FeedOptions {
        ws: args.ws,
        sse: args.sse,
        rate: args.rate,
        count: args.count,
        data: args.data.data_set(),
    };
    let server = match args.repeat {
        Some(k) => FeedServer::start_repeating(opts, k)?,
        None => FeedServer::start(opts)?,
    };
    let rate = if args.rate == 0 {
        "unpaced".to_owned()
    } else {
        format!("{} events/s per connection", args.rate)
    };
    let mut endpoints = Vec::new();
    endpoints.extend(server.ws_url());
    endpoints.extend(server.sse_url());
    println!(
        "feed: serving {} ({rate}, seed {}); Ctrl-C to stop",
        endpoints.join(" and "),
        args.data.seed
    );
    let _ = std::io::stdout().flush();
    // Wait for Ctrl-C (or SIGTERM-less parents closing: the process is simply killed).
    while rx.recv_timeout(Duration::from_secs(3600)).is_err() {}
    let sent = server.sent();
    let connections = server.connections();
    server.stop();
    println!("feed: stopped after {sent} events to {connections} connections");
    Ok(())
}

fn dump(args: DumpArgs) -> anyhow::Result<()> {
    let data = args.data.data_set();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in args.from..args.from.saturating_add(args.count) {
        // A closed pipe (`| head`) ends the dump quietly.
        if writeln!(out, "{}", data.text(i)).is_err() {
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}
