//! The SMTP mail transaction (`send::smtp`) against a scripted in-process
//! server: pipelining when offered, one command at a time when not, the
//! first refusal as the outcome, `RSET` and reuse of the connection after a
//! refusal, an empty message ended when a lax server accepts DATA without a
//! recipient, and dots at line starts arriving intact. smtp-sink cannot
//! script these (its `-r`/`-f` turn pipelining off); the same transaction
//! against smtp-sink is covered in send_smtp and send_dkim.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common;
use whatsup::config::SmtpServer;
use whatsup::send::transport::{Failure, Outgoing, SmtpPool, Transport};

/// How the scripted server behaves.
#[derive(Clone, Copy)]
struct Script {
    /// Announce PIPELINING in the EHLO reply.
    pipelining: bool,
    /// Answer DATA with 354 even when no recipient was accepted.
    lax_data: bool,
}

/// What the server saw: each command line with whether more input was
/// already waiting when it was read (so it came in the same write), each
/// message as received (still dot-stuffed), and connections opened.
#[derive(Default)]
struct Seen {
    commands: Vec<(String, bool)>,
    messages: Vec<String>,
    connections: usize,
}

/// Starts the server on a free loopback port. Recipients whose local part
/// starts with `refuse` get `550 5.1.1`; everything else is accepted.
async fn scripted_server(script: Script) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            shared.lock().unwrap().connections += 1;
            let seen = shared.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = sock.into_split();
                let mut rd = BufReader::new(rd);
                wr.write_all(b"220 scripted.example.net ESMTP\r\n")
                    .await
                    .unwrap();
                let mut valid_rcpt = 0;
                loop {
                    let mut line = String::new();
                    if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let more = !rd.buffer().is_empty();
                    let cmd = line.trim_end().to_string();
                    seen.lock().unwrap().commands.push((cmd.clone(), more));
                    let verb = cmd
                        .split([' ', ':'])
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let reply: String = match verb.as_str() {
                        "EHLO" => {
                            let mut r = String::from("250-scripted.example.net\r\n");
                            if script.pipelining {
                                r.push_str("250-PIPELINING\r\n");
                            }
                            r.push_str("250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n");
                            r
                        }
                        "MAIL" => {
                            valid_rcpt = 0;
                            "250 2.1.0 Ok\r\n".into()
                        }
                        "RCPT" if cmd.to_ascii_lowercase().contains("<refuse") => {
                            "550 5.1.1 <refused>: Recipient address rejected\r\n".into()
                        }
                        "RCPT" => {
                            valid_rcpt += 1;
                            "250 2.1.5 Ok\r\n".into()
                        }
                        "DATA" if valid_rcpt == 0 && !script.lax_data => {
                            "554 5.5.1 Error: no valid recipients\r\n".into()
                        }
                        "DATA" => {
                            wr.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                                .await
                                .unwrap();
                            let mut data = Vec::new();
                            loop {
                                let mut l = Vec::new();
                                if rd.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if l == b".\r\n" {
                                    break;
                                }
                                data.extend_from_slice(&l);
                            }
                            seen.lock()
                                .unwrap()
                                .messages
                                .push(String::from_utf8(data).unwrap());
                            if valid_rcpt == 0 {
                                "554 5.5.1 Error: no valid recipients\r\n".into()
                            } else {
                                "250 2.0.0 Ok: queued\r\n".into()
                            }
                        }
                        "RSET" | "NOOP" => "250 2.0.0 Ok\r\n".into(),
                        "QUIT" => {
                            let _ = wr.write_all(b"221 2.0.0 Bye\r\n").await;
                            return;
                        }
                        _ => "502 5.5.2 Error: command not recognized\r\n".into(),
                    };
                    wr.write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (port, seen)
}

/// The transport to the scripted server, with the store it keeps its
/// ceilings in (kept alive by the caller).
async fn transport(port: u16) -> (Transport, common::TestDb) {
    let db = common::sqlite().await;
    let server = SmtpServer {
        name: "scripted".into(),
        host: "127.0.0.1".into(),
        port,
        max_connections: 1,
        timeout_secs: 10,
        ..Default::default()
    };
    let t = Transport::Smtp(SmtpPool::new(&[server], db.store.clone()).unwrap());
    (t, db)
}

/// A scripted server and the transport to it: (transport, what the server
/// saw, the store to keep alive).
async fn connected(script: Script) -> (Transport, Arc<Mutex<Seen>>, common::TestDb) {
    let (port, seen) = scripted_server(script).await;
    let (t, db) = transport(port).await;
    (t, seen, db)
}

const MESSAGE: &str = "From: news@example.org\r\nTo: a@example.net\r\nSubject: dots\r\n\r\n\
.a line that starts with a dot\r\n..two dots\r\n.\r\nlast line\r\n";

async fn send(t: &Transport, to: &str) -> Result<String, Failure> {
    t.send(Outgoing {
        campaign: 1,
        delivery: 1,
        mail_from: "bounces@example.org",
        rcpt_to: to,
        bytes: MESSAGE.as_bytes(),
    })
    .await
    .map(|a| a.reply)
}

/// Undoes dot-stuffing as a receiving server does.
fn unstuffed(received: &str) -> String {
    received
        .split_inclusive("\r\n")
        .map(|l| l.strip_prefix('.').unwrap_or(l))
        .collect()
}

#[tokio::test]
async fn a_server_that_offers_pipelining_gets_mail_rcpt_and_data_in_one_write() {
    let (t, seen, _db) = connected(Script {
        pipelining: true,
        lax_data: false,
    })
    .await;
    let reply = send(&t, "a@example.net").await.unwrap();
    assert!(reply.starts_with("250"), "{reply}");
    let seen = seen.lock().unwrap();
    let envelope: Vec<&(String, bool)> = seen
        .commands
        .iter()
        .filter(|(c, _)| c.starts_with("MAIL") || c.starts_with("RCPT") || c == "DATA")
        .collect();
    assert_eq!(envelope.len(), 3, "{:?}", seen.commands);
    assert!(envelope[0].0.starts_with("MAIL FROM:<bounces@example.org>"));
    assert!(envelope[1].0.starts_with("RCPT TO:<a@example.net>"));
    // MAIL and RCPT were read with the rest of the write already waiting.
    assert!(envelope[0].1 && envelope[1].1, "{:?}", seen.commands);
    assert_eq!(seen.messages.len(), 1);
    assert_eq!(unstuffed(&seen.messages[0]), MESSAGE);
    assert!(
        seen.messages[0].contains("\r\n..a line that starts with a dot\r\n...two dots\r\n..\r\n")
    );
}

#[tokio::test]
async fn without_pipelining_each_command_waits_for_its_reply_and_the_message_arrives_intact() {
    let (t, seen, _db) = connected(Script {
        pipelining: false,
        lax_data: false,
    })
    .await;
    send(&t, "a@example.net").await.unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen.commands
            .iter()
            .filter(|(c, _)| c.starts_with("MAIL") || c.starts_with("RCPT"))
            .all(|(_, more)| !more),
        "{:?}",
        seen.commands
    );
    assert_eq!(unstuffed(&seen.messages[0]), MESSAGE);
}

#[tokio::test]
async fn a_refused_recipient_in_a_pipelined_transaction_fails_with_its_own_reply_and_the_connection_is_reused(
) {
    let (t, seen, _db) = connected(Script {
        pipelining: true,
        lax_data: false,
    })
    .await;
    match send(&t, "refuse-me@example.net").await {
        Err(Failure::Permanent { code, text, .. }) => {
            assert_eq!(code, "550 5.1.1");
            assert!(text.contains("Recipient address rejected"), "{text}");
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
    send(&t, "b@example.net").await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.connections, 1,
        "the refusal did not cost the connection"
    );
    assert!(seen.commands.iter().any(|(c, _)| c == "RSET"));
    assert_eq!(seen.messages.len(), 1, "only the accepted message was sent");
}

#[tokio::test]
async fn a_lax_server_that_accepts_data_without_a_recipient_gets_an_empty_message_ended_at_once() {
    let (t, seen, _db) = connected(Script {
        pipelining: true,
        lax_data: true,
    })
    .await;
    match send(&t, "refuse-me@example.net").await {
        Err(Failure::Permanent { code, .. }) => assert_eq!(code, "550 5.1.1"),
        other => panic!("expected the RCPT refusal, got {other:?}"),
    }
    send(&t, "c@example.net").await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.messages.len(), 2);
    assert_eq!(
        seen.messages[0], "",
        "the refused transaction carried no content"
    );
    assert_eq!(unstuffed(&seen.messages[1]), MESSAGE);
    assert_eq!(seen.connections, 1);
}

#[tokio::test]
async fn without_pipelining_a_refused_recipient_stops_before_data_and_the_connection_is_reused() {
    let (t, seen, _db) = connected(Script {
        pipelining: false,
        lax_data: false,
    })
    .await;
    assert!(matches!(
        send(&t, "refuse-me@example.net").await,
        Err(Failure::Permanent { .. })
    ));
    send(&t, "d@example.net").await.unwrap();
    let seen = seen.lock().unwrap();
    let datas = seen.commands.iter().filter(|(c, _)| c == "DATA").count();
    assert_eq!(
        datas, 1,
        "DATA only for the accepted recipient: {:?}",
        seen.commands
    );
    assert_eq!(seen.connections, 1);
}
