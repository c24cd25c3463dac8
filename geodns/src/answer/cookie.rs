//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018).
//!
//! A client sends its 8-byte client cookie, and the server cookie it got
//! last time if any. We always answer with the client cookie and a fresh
//! server cookie: version 1, three reserved bytes, a timestamp and
//! SipHash-2-4 over them, the client cookie and the client's address, keyed
//! with the server secret. A query whose server cookie we made (less than
//! an hour ago) proves its source address, so it is never rate limited.
//! Cookies are not required: a query without one is answered as before.
//! Servers of one NS set or anycast address share `server.cookie_secret`
//! so each accepts the others' cookies.

use std::hash::Hasher;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use siphasher::sip::SipHasher24;

/// The COOKIE option code (RFC 7873 section 4).
pub const OPTION_COOKIE: u16 = 10;
/// Client cookie and our server cookie.
pub const REPLY_LENGTH: usize = 24;
/// How long a server cookie we made stays valid (RFC 9018 section 4.3).
const LIFETIME_SECONDS: u32 = 3600;
/// How far in the future a timestamp may be (clock skew between servers).
const SKEW_SECONDS: u32 = 300;

/// The COOKIE option of a query, copied out of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieView {
    /// The client cookie.
    pub client: [u8; 8],
    server: [u8; 32],
    server_len: u8,
}

impl CookieView {
    /// Parses the option data: a client cookie alone (8 bytes), or with a
    /// server cookie of 8 to 32 bytes (RFC 7873 section 4); `None` for
    /// any other length, which is a FORMERR (section 5.2.2).
    pub fn parse(data: &[u8]) -> Option<Self> {
        if data.len() != 8 && !(16..=40).contains(&data.len()) {
            return None;
        }
        let mut view = Self {
            client: data[..8].try_into().ok()?,
            server: [0; 32],
            server_len: (data.len() - 8) as u8,
        };
        view.server[..data.len() - 8].copy_from_slice(&data[8..]);
        Some(view)
    }

    /// The server cookie the client sent, if any.
    pub fn server(&self) -> &[u8] {
        &self.server[..usize::from(self.server_len)]
    }
}

/// Makes and checks server cookies with one secret.
#[derive(Debug, Clone)]
pub struct ServerCookies {
    secret: [u8; 16],
}

impl ServerCookies {
    /// Cookies keyed by `secret`.
    pub fn new(secret: [u8; 16]) -> Self {
        Self { secret }
    }

    /// The option data of our reply to `cookie` from `client`: the client
    /// cookie followed by a server cookie made now.
    pub fn reply(&self, cookie: &CookieView, client: IpAddr) -> [u8; REPLY_LENGTH] {
        let mut out = [0u8; REPLY_LENGTH];
        out[..8].copy_from_slice(&cookie.client);
        out[8..].copy_from_slice(&self.server_cookie(&cookie.client, client, now()));
        out
    }

    /// Whether the server cookie in `cookie` is one of ours for `client`,
    /// made within the last hour.
    pub fn verified(&self, cookie: &CookieView, client: IpAddr) -> bool {
        let Ok(server) = <[u8; 16]>::try_from(cookie.server()) else {
            return false;
        };
        if server[0] != 1 {
            return false;
        }
        let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        let now = now();
        // Serial number arithmetic: the timestamp wraps (RFC 9018 4.3).
        let age = now.wrapping_sub(stamp);
        let fresh = age <= LIFETIME_SECONDS || stamp.wrapping_sub(now) <= SKEW_SECONDS;
        fresh && self.server_cookie(&cookie.client, client, stamp)[..] == server[..]
    }

    fn server_cookie(&self, client_cookie: &[u8; 8], client: IpAddr, stamp: u32) -> [u8; 16] {
        let mut cookie = [0u8; 16];
        cookie[0] = 1;
        cookie[4..8].copy_from_slice(&stamp.to_be_bytes());
        let mut hasher = SipHasher24::new_with_key(&self.secret);
        hasher.write(client_cookie);
        hasher.write(&cookie[..8]);
        match client.to_canonical() {
            IpAddr::V4(v4) => hasher.write(&v4.octets()),
            IpAddr::V6(v6) => hasher.write(&v6.octets()),
        }
        cookie[8..].copy_from_slice(&hasher.finish().to_le_bytes());
        cookie
    }
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_only() -> CookieView {
        CookieView::parse(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap()
    }

    #[test]
    fn lengths_other_than_8_or_16_to_40_are_malformed() {
        for length in [0, 1, 7, 9, 15, 41, 64] {
            assert!(CookieView::parse(&vec![0; length]).is_none(), "{length}");
        }
        for length in [8, 16, 24, 40] {
            assert!(CookieView::parse(&vec![0; length]).is_some(), "{length}");
        }
    }

    #[test]
    fn our_cookie_verifies_for_its_client_only() {
        let cookies = ServerCookies::new([7; 16]);
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let reply = cookies.reply(&client_only(), client);
        assert_eq!(&reply[..8], &client_only().client);
        assert_eq!(reply[8], 1, "version 1");
        let returned = CookieView::parse(&reply).unwrap();
        assert!(cookies.verified(&returned, client));
        assert!(!cookies.verified(&returned, "198.51.100.8".parse().unwrap()));
        assert!(!ServerCookies::new([8; 16]).verified(&returned, client));
        let mut tampered = reply;
        tampered[23] ^= 1;
        assert!(!cookies.verified(&CookieView::parse(&tampered).unwrap(), client));
        assert!(!cookies.verified(&client_only(), client));
    }

    #[test]
    fn stale_cookies_do_not_verify() {
        let cookies = ServerCookies::new([7; 16]);
        let client: IpAddr = "2001:db8::1".parse().unwrap();
        let old = now().wrapping_sub(LIFETIME_SECONDS + 10);
        let server = cookies.server_cookie(&client_only().client, client, old);
        let mut data = client_only().client.to_vec();
        data.extend_from_slice(&server);
        assert!(!cookies.verified(&CookieView::parse(&data).unwrap(), client));
    }
}
