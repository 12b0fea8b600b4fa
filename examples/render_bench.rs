//! Rendering benchmark: compile a ~10 KiB issue once, then render complete
//! personalised messages (headers, both MIME parts, quoted-printable) for
//! 100,000 synthetic contacts on one thread.
//!
//! `cargo run --release --example render_bench [CONTACTS] [--merge-tags]`
//!
//! `--merge-tags` puts merge tags in the issue's own text (the subject, a
//! heading and the introduction), so each message also fills those and
//! writes its own Subject header.

use std::time::Instant;

use whatsup::compose::{CompiledIssue, Issue, Recipient};
use whatsup::config::Newsletter;
use whatsup::domain::OrgKind;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let merge_tags = args.iter().any(|a| a == "--merge-tags");
    let sample =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/issue-214.md"))
            .expect("samples/issue-214.md");
    // Grow the sample to about 10 KiB by repeating its Events section.
    let (front, intro) = sample.split_at(sample.rfind("\n+++\n").expect("front matter"));
    let events_start = front
        .find("[[sections]]\ntitle = \"Events\"")
        .expect("events section");
    let events_end = front
        .find("[[sections]]\ntitle = \"Culture & Nature\"")
        .expect("culture section");
    let mut source = front.to_string();
    while source.len() + intro.len() < 10 * 1024 {
        source.push('\n');
        source.push_str(&front[events_start..events_end]);
    }
    source.push_str(intro);
    if merge_tags {
        source = source
            .replacen(
                "subject = \"",
                "subject = \"For {{ recipient.organisation or 'you' }}: ",
                1,
            )
            .replacen(
                "heading = \"",
                "heading = \"{{ recipient.name }}, ",
                1,
            )
            .replacen(
                "Welcome to the July issue",
                "Dear {{ recipient.name or \"colleague\" }} of {{ recipient.city }}, welcome to the July issue",
                1,
            );
    }
    let kinds = [
        OrgKind::Embassy,
        OrgKind::City,
        OrgKind::InternationalOrg,
        OrgKind::RepresentativeOffice,
    ];
    let contacts: Vec<Recipient> = (0..n)
        .map(|i| Recipient {
            email: format!("contact{i}@org{}.example.org", i % 997),
            name: format!("Contact Nümber {i}"),
            title: if i % 3 == 0 {
                "H.E.".into()
            } else {
                String::new()
            },
            salutation: String::new(),
            organisation: format!("Organisation {}", i % 997),
            kind: Some(kinds[i % kinds.len()]),
            country: "FR".into(),
            city: "Paris".into(),
            timezone: "Europe/Paris".into(),
            tokens: whatsup::compose::LinkTokens::same(1, &format!("tok{i:08x}abcdef0123456789")),
        })
        .collect();

    let t0 = Instant::now();
    let issue = Issue::parse("bench.md", &source).expect("issue parses");
    let compiled = CompiledIssue::compile(issue, &Newsletter::default()).expect("issue compiles");
    let compile = t0.elapsed();

    let cpu0 = thread_cpu_secs();
    let t1 = Instant::now();
    let mut bytes = 0usize;
    for c in &contacts {
        let m = compiled.render_for(c).expect("renders");
        bytes += m.bytes.len();
    }
    let render = t1.elapsed();
    let cpu = thread_cpu_secs() - cpu0;
    let rate = n as f64 / render.as_secs_f64();
    println!(
        "issue source: {} bytes ({:.1} KiB){}",
        source.len(),
        source.len() as f64 / 1024.0,
        if merge_tags { ", with merge tags" } else { "" }
    );
    println!("compile once: {:.1} ms", compile.as_secs_f64() * 1e3);
    println!(
        "rendered {n} messages in {:.2} s on one thread: {:.0} messages/s ({:.1} µs each, {:.1} KiB average)",
        render.as_secs_f64(),
        rate,
        render.as_secs_f64() * 1e6 / n as f64,
        bytes as f64 / n as f64 / 1024.0
    );
    println!(
        "thread CPU time {cpu:.2} s: {:.0} messages per CPU-second (the rate per core, whatever the machine's load)",
        n as f64 / cpu
    );
}

/// CPU time this thread has used, in seconds: a rate per core that other
/// processes on a loaded machine do not distort.
fn thread_cpu_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}
