//! A served admin API over a test database, with one account and one API
//! token per role, and a client that speaks to it as any of them.

use std::net::SocketAddr;

use whatsup::app::accounts;
use whatsup::config::Config;
use whatsup::domain::{Actor, Role};
use whatsup::store::users::User;
use whatsup::web::api::AdminServer;

use super::http::{self, Reply};
use super::TestDb;

/// The password every test account gets.
pub const PASSWORD: &str = "violet kettle harbour sings";

/// An account with its API token.
#[derive(Debug, Clone)]
pub struct Person {
    pub user: User,
    pub token: String,
}

/// The admin API served over a test database.
pub struct Api {
    pub server: Option<AdminServer>,
    /// `whatsup serve` when the admin runs in the real binary
    /// ([`Api::start_binary`]); ended with the test.
    pub process: Option<super::admin_pages::Running>,
    pub db: TestDb,
    pub addr: SocketAddr,
    pub admin: Person,
    pub operator: Person,
    pub editor: Person,
    pub viewer: Person,
    /// A second operator, to approve what the first one created.
    pub approver: Person,
}

/// Who sends a request.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    Nobody,
    Token(&'a str),
    /// A session cookie, with the CSRF token if any.
    Session(&'a str, Option<&'a str>),
}

pub async fn person(db: &TestDb, email: &str, role: Role) -> Person {
    let setup = Actor::Cli {
        unix_user: "test".into(),
        account: None,
    };
    let user = accounts::add_user(&db.store, &setup, email, "", role, Some(PASSWORD))
        .await
        .unwrap_or_else(|e| panic!("add {email}: {e}"));
    let (_, token) = accounts::create_token(&db.store, &setup, user.id, "test")
        .await
        .unwrap();
    Person { user, token }
}

impl Api {
    /// Serves the admin API on a free loopback port with `config` (the
    /// test database's URL is kept).
    pub async fn start_with(db: TestDb, config: Config) -> Api {
        let server = AdminServer::start(db.store.clone(), config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("start the admin server");
        let addr = server.addr;
        Api::with_people(db, addr, Some(server), None).await
    }

    /// The same people, with the admin served by the real binary
    /// (`whatsup serve`, data in `dir`, approval required, no relay).
    pub async fn start_binary(db: TestDb, dir: &std::path::Path) -> Api {
        let (process, addr) = super::admin_pages::serve(&db, dir, 9);
        Api::with_people(db, addr, None, Some(process)).await
    }

    async fn with_people(
        db: TestDb,
        addr: SocketAddr,
        server: Option<AdminServer>,
        process: Option<super::admin_pages::Running>,
    ) -> Api {
        let admin = person(&db, "admin@example.org", Role::Admin).await;
        let operator = person(&db, "operator@example.org", Role::Operator).await;
        let editor = person(&db, "editor@example.org", Role::Editor).await;
        let viewer = person(&db, "viewer@example.org", Role::Viewer).await;
        let approver = person(&db, "approver@example.org", Role::Operator).await;
        Api {
            addr,
            server,
            process,
            db,
            admin,
            operator,
            editor,
            viewer,
            approver,
        }
    }

    pub async fn start(db: TestDb) -> Api {
        let config = db.config.clone();
        Api::start_with(db, config).await
    }

    pub fn person(&self, role: Role) -> &Person {
        match role {
            Role::Admin => &self.admin,
            Role::Operator => &self.operator,
            Role::Editor => &self.editor,
            Role::Viewer => &self.viewer,
        }
    }

    /// Sends a request as someone, with a JSON body if given.
    pub async fn call(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Reply {
        let json = body.map(|b| b.to_string());
        self.call_raw(
            who,
            method,
            path,
            json.as_deref().map(|j| ("application/json", j.as_bytes())),
        )
        .await
    }

    /// Sends a request with a body of any content type.
    pub async fn call_raw(
        &self,
        who: As<'_>,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        let mut headers: Vec<(String, String)> = Vec::new();
        match who {
            As::Nobody => {}
            As::Token(t) => headers.push(("Authorization".into(), format!("Bearer {t}"))),
            As::Session(cookie, csrf) => {
                headers.push((
                    "Cookie".into(),
                    format!("{}={cookie}", whatsup::web::auth::SESSION_COOKIE),
                ));
                if let Some(c) = csrf {
                    headers.push((whatsup::web::auth::CSRF_HEADER.into(), c.into()));
                }
            }
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http::send(self.addr, method, path, &headers, body).await
    }

    /// Logs in; returns (session cookie, CSRF token) and the reply.
    pub async fn login(&self, email: &str, password: &str) -> (Option<(String, String)>, Reply) {
        self.login_presenting(email, password, None).await
    }

    /// Logs in presenting a session cookie (as a browser that had one).
    pub async fn login_presenting(
        &self,
        email: &str,
        password: &str,
        presented: Option<&str>,
    ) -> (Option<(String, String)>, Reply) {
        let body = serde_json::json!({"email": email, "password": password});
        let who = match presented {
            Some(c) => As::Session(c, None),
            None => As::Nobody,
        };
        let r = self
            .call(who, "POST", "/api/v1/auth/login", Some(&body))
            .await;
        if r.status != 200 {
            return (None, r);
        }
        let cookie = r
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .and_then(|c| c.split_once('='))
            .map(|(_, v)| v.to_string())
            .expect("a session cookie");
        let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
        (Some((cookie, csrf)), r)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
        drop(self.process.take());
    }
}
