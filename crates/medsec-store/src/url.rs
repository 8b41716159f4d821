//! Database URLs in logs and errors: the password never appears.

/// Returns `url` with any password replaced by `***` (`postgres://u:***@host/db`).
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The authority ends at the first '/', '?' or '#'; user info ends at its last '@'.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // A password may also come as a query parameter.
    let tail = mask_query_password(tail);
    let authority = match authority.rsplit_once('@') {
        None => authority.to_owned(),
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
    };
    format!("{scheme}://{authority}{tail}")
}

fn mask_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://medsec:s3cr@t@db.example:5432/medsec"),
            "postgres://medsec:***@db.example:5432/medsec"
        );
        assert_eq!(
            mask_password("postgres://u@h/db?sslmode=require&password=hunter2"),
            "postgres://u@h/db?sslmode=require&password=***"
        );
        assert_eq!(
            mask_password("postgres://u@127.0.0.1/test"),
            "postgres://u@127.0.0.1/test"
        );
        assert_eq!(
            mask_password("sqlite:///var/lib/medsec.db"),
            "sqlite:///var/lib/medsec.db"
        );
        assert!(!mask_password("postgres://a:b:c@h/d").contains("b:c"));
        assert_eq!(
            mask_password("postgres://h/d?password=x"),
            "postgres://h/d?password=***"
        );
    }
}
