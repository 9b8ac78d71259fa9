//! A browser's part in the console tests: cookies, forms and their CSRF tokens, over real HTTP
//! to the real hub.

use super::*;

/// A response as the tests read it.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub headers: Vec<(String, String)>,
    /// The body as text (invalid UTF-8 replaced), and as it came.
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Page {
    /// The value of the first `name="csrf"` hidden field.
    pub fn csrf(&self) -> String {
        hidden(&self.body, "csrf").expect("the page has a CSRF token")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The value of a hidden input in an HTML page.
pub fn hidden(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    Some(body[start..].split('"').next()?.to_string())
}

/// A browser: its cookies (name → value) and how it reaches the hub.
pub struct Browser {
    pub base: String,
    pub cookies: std::collections::BTreeMap<String, String>,
    agent: ureq::Agent,
    pub extra: Vec<(String, String)>,
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.trim_end_matches('/').to_string(),
            cookies: Default::default(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(60)))
                .build()
                .into(),
            extra: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn read(&mut self, mut response: ureq::http::Response<ureq::Body>) -> Page {
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let set_cookies: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.clone())
            .collect();
        for cookie in &set_cookies {
            let pair = cookie.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || cookie.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        let location = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("location"))
            .map(|(_, v)| v.clone());
        let bytes = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        Page {
            status,
            location,
            set_cookies,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    pub fn get(&mut self, path: &str) -> Page {
        let request = self.agent.get(format!("{}{path}", self.base));
        self.call(request)
    }

    /// A HEAD request, as a download manager sends first.
    pub fn head(&mut self, path: &str) -> Page {
        let request = self.agent.head(format!("{}{path}", self.base));
        self.call(request)
    }

    /// A request without a body, with the browser's cookies and headers.
    fn call(&mut self, request: ureq::RequestBuilder<ureq::typestate::WithoutBody>) -> Page {
        let mut request = request
            .header("Cookie", self.cookie_header())
            .header("Accept-Language", "fr");
        for (k, v) in &self.extra {
            request = request.header(k, v);
        }
        let response = request.call().expect("the request reaches the hub");
        self.read(response)
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_encoded(path, form_encode(fields))
    }

    /// A form body as given, encoded already (what no browser sends, too).
    pub fn post_encoded(&mut self, path: &str, body: String) -> Page {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept-Language", "fr");
        for (k, v) in &self.extra {
            request = request.header(k, v);
        }
        let response = request.send(body).expect("POST reaches the hub");
        self.read(response)
    }

    /// A form with a file, as a browser sends it (`multipart/form-data`): `fields`, then the
    /// file under `file_field`.
    pub fn post_file(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        (file_field, file_name, bytes): (&str, &str, &[u8]),
    ) -> Page {
        const BOUNDARY: &str = "vigie-test-boundary-7f3a";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .bytes(),
            );
        }
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{file_field}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: application/json\r\n\r\n"
            )
            .bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend(format!("\r\n--{BOUNDARY}--\r\n").bytes());
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .header("Accept-Language", "fr");
        for (k, v) in &self.extra {
            request = request.header(k, v);
        }
        let response = request.send(&body[..]).expect("POST reaches the hub");
        self.read(response)
    }

    /// Signs in; returns the answer to the sign-in form.
    pub fn sign_in(&mut self, login: &str, password: &str) -> Page {
        let form = self.get("/console/signin");
        let csrf = form.csrf();
        self.post(
            "/console/signin",
            &[
                ("csrf", &csrf),
                ("next", "/console/"),
                ("login", login),
                ("password", password),
            ],
        )
    }
}

/// `vigie console invite`: the one-time link's path (`/console/welcome/<token>`).
pub fn invite(data: &Path, user: Uuid) -> String {
    let database = database_args(data);
    let user = user.to_string();
    let mut args = vec![
        "console",
        "invite",
        "--data",
        data.to_str().expect("utf-8 path"),
        "--user",
        &user,
    ];
    args.extend(database.iter().map(String::as_str));
    let link = vigie(&args);
    let at = link.find("/console/welcome/").expect("a welcome link");
    link[at..].to_string()
}

/// A console account for `user`: the invitation used with this sign-in name and password.
pub fn account(browser: &mut Browser, data: &Path, user: Uuid, login: &str, password: &str) {
    let path = invite(data, user);
    let welcome = browser.get(&path);
    assert_eq!(welcome.status, 200, "the invitation opens");
    let csrf = welcome.csrf();
    let done = browser.post(
        &path,
        &[
            ("csrf", &csrf),
            ("login", login),
            ("password", password),
            ("again", password),
        ],
    );
    assert_eq!(done.status, 303, "the password is saved: {}", done.body);
}
