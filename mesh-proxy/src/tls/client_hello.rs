//! Reading the server name (SNI) of a TLS ClientHello without consuming it.
//!
//! A gateway port that routes by SNI decides, from the name the client asks for, whether to
//! terminate the connection's TLS (rustls then reads the very same bytes) or to forward it
//! untouched, byte for byte (`PASSTHROUGH`). [`peek_client_hello`] therefore looks at the
//! socket's pending bytes with `peek` and leaves them there; [`parse`] reads the first TLS
//! record of a buffer.
//!
//! Only a ClientHello that fits in the first TLS record is understood (every common client
//! sends it in one); one split over several records, an SSLv2-style hello, or anything that is
//! not a TLS handshake at all is [`ClientHello::NotTls`].

use std::{io, time::Duration};
use tokio::net::TcpStream;

/// The content type of a TLS record carrying handshake messages.
const CONTENT_HANDSHAKE: u8 = 22;
/// The handshake message type of a ClientHello.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// The largest plaintext TLS record body (2^14 bytes).
const MAX_RECORD: usize = 16384;
/// The length of a TLS record header: type, version, length.
const RECORD_HEADER: usize = 5;
/// The length of a handshake message header: type, 24-bit length.
const HANDSHAKE_HEADER: usize = 4;
/// The extension carrying the server name (RFC 6066).
const EXTENSION_SERVER_NAME: u16 = 0;
/// The `host_name` entry type of the server name extension.
const NAME_TYPE_HOST_NAME: u8 = 0;

/// What the first bytes of a connection say; see the [module docs](self).
///
/// ```
/// use mesh_proxy::tls::{client_hello::{ClientHello, parse}, provider};
/// use std::sync::Arc;
/// let config = rustls::ClientConfig::builder_with_provider(provider())
///     .with_safe_default_protocol_versions().unwrap()
///     .with_root_certificates(rustls::RootCertStore::empty())
///     .with_no_client_auth();
/// let mut client = rustls::ClientConnection::new(Arc::new(config), "Shop.Example.com".try_into().unwrap()).unwrap();
/// let mut hello = Vec::new();
/// client.write_tls(&mut hello).unwrap();
/// assert_eq!(parse(&hello), ClientHello::Hello { server_name: Some("shop.example.com".into()) });
/// assert_eq!(parse(&hello[..hello.len() - 1]), ClientHello::Incomplete);
/// ```
#[derive(Debug, PartialEq, Eq)]
pub enum ClientHello {
    /// The bytes so far start a TLS ClientHello, but more are needed to read it.
    Incomplete,
    /// The bytes are not a TLS ClientHello this parser understands (plaintext, another record
    /// or handshake type, a record over 16 KiB, a hello split over records, a malformed hello).
    NotTls,
    /// A complete ClientHello.
    Hello {
        /// The `host_name` of the server name extension, lower-cased; `None` when the client
        /// sent none (as when it connects to an IP address).
        server_name: Option<String>,
    },
}

/// Reads the ClientHello at the start of `buf` (the first bytes a client sent).
///
/// Never panics, whatever the bytes; a buffer that is a prefix of a valid ClientHello (the
/// empty one included) is [`ClientHello::Incomplete`].
///
/// ```
/// use mesh_proxy::tls::client_hello::{ClientHello, parse};
/// assert_eq!(parse(b""), ClientHello::Incomplete);
/// assert_eq!(parse(&[22, 3, 1]), ClientHello::Incomplete);
/// assert_eq!(parse(b"GET / HTTP/1.1\r\n"), ClientHello::NotTls);
/// ```
pub fn parse(buf: &[u8]) -> ClientHello {
    // What the bytes so far can already rule out, so plaintext is told apart at once.
    match buf.first() {
        None => return ClientHello::Incomplete,
        Some(&CONTENT_HANDSHAKE) => {}
        Some(_) => return ClientHello::NotTls,
    }
    // Every TLS version so far is 3.x on the wire (SSL 3.0 to TLS 1.3).
    if let Some(&major) = buf.get(1)
        && major != 3
    {
        return ClientHello::NotTls;
    }
    let (Some(&high), Some(&low)) = (buf.get(3), buf.get(4)) else {
        return ClientHello::Incomplete;
    };
    let record_len = usize::from(u16::from_be_bytes([high, low]));
    if !(HANDSHAKE_HEADER..=MAX_RECORD).contains(&record_len) {
        return ClientHello::NotTls;
    }
    if let Some(&kind) = buf.get(RECORD_HEADER)
        && kind != HANDSHAKE_CLIENT_HELLO
    {
        return ClientHello::NotTls;
    }
    let Some(record) = buf.get(RECORD_HEADER..RECORD_HEADER + record_len) else {
        return ClientHello::Incomplete;
    };
    match client_hello_body(record).and_then(server_name) {
        Some(server_name) => ClientHello::Hello { server_name },
        None => ClientHello::NotTls,
    }
}

/// The ClientHello body in a complete handshake record, if it is all there.
fn client_hello_body(record: &[u8]) -> Option<&[u8]> {
    let mut reader = Reader(record);
    if reader.u8()? != HANDSHAKE_CLIENT_HELLO {
        return None;
    }
    let len = reader.u24()?;
    // The whole message must be in this record: a hello continued in the next one is refused.
    reader.take(len)
}

/// The server name in a ClientHello body: `Some(None)` when it has none, `None` when the body
/// is malformed.
fn server_name(body: &[u8]) -> Option<Option<String>> {
    let mut hello = Reader(body);
    hello.take(2)?; // legacy_version
    hello.take(32)?; // random
    hello.vec8()?; // legacy_session_id
    hello.vec16()?; // cipher_suites
    hello.vec8()?; // legacy_compression_methods
    if hello.is_empty() {
        // A hello without extensions (allowed before TLS 1.3) names no server.
        return Some(None);
    }
    let mut extensions = Reader(hello.vec16()?);
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind != EXTENSION_SERVER_NAME {
            continue;
        }
        let mut names = Reader(Reader(data).vec16()?);
        while !names.is_empty() {
            let name_type = names.u8()?;
            let name = names.vec16()?;
            if name_type == NAME_TYPE_HOST_NAME {
                let name = std::str::from_utf8(name).ok()?;
                return Some(Some(name.to_ascii_lowercase()));
            }
        }
        return Some(None);
    }
    Some(None)
}

/// A cursor over bytes that yields `None` instead of reading past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let taken = self.0.get(..len)?;
        self.0 = self.0.get(len..)?;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.take(2)?;
        Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
    }

    fn u24(&mut self) -> Option<usize> {
        let bytes = self.take(3)?;
        let byte = |at: usize| bytes.get(at).copied().map(usize::from);
        Some((byte(0)? << 16) | (byte(1)? << 8) | byte(2)?)
    }

    /// A vector with a one-byte length.
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()?;
        self.take(usize::from(len))
    }

    /// A vector with a two-byte length.
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

/// How long to wait before peeking again when no new bytes have arrived: the pending bytes
/// keep the socket readable, so waiting for readiness alone would spin.
const PEEK_PAUSE: Duration = Duration::from_millis(2);

/// Reads the ClientHello at the start of `stream` without consuming it: the bytes stay in the
/// socket, for rustls to read or to be forwarded as they are.
///
/// Returns once [`parse`] says [`ClientHello::NotTls`] or [`ClientHello::Hello`]. Errors: the
/// peer closed the connection before sending anything ([`io::ErrorKind::UnexpectedEof`]), or
/// the ClientHello was not complete within `timeout` ([`io::ErrorKind::TimedOut`]; a peer that
/// closes in the middle of its hello ends here too, since `peek` still sees the bytes in front
/// of the end), or the socket's own errors.
///
/// ```
/// use mesh_proxy::tls::client_hello::{ClientHello, peek_client_hello};
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
/// client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
/// let (mut stream, _) = listener.accept().await.unwrap();
/// assert_eq!(peek_client_hello(&stream, Duration::from_secs(5)).await.unwrap(), ClientHello::NotTls);
/// let mut first = [0; 3];
/// stream.read_exact(&mut first).await.unwrap();
/// assert_eq!(&first, b"GET", "the bytes were left in the socket");
/// # }
/// ```
pub async fn peek_client_hello(stream: &TcpStream, timeout: Duration) -> io::Result<ClientHello> {
    let peek = async {
        let mut buf = vec![0u8; RECORD_HEADER + MAX_RECORD];
        let mut seen = 0;
        loop {
            let peeked = stream.peek(&mut buf).await?;
            if peeked == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before a TLS ClientHello",
                ));
            }
            match parse(buf.get(..peeked).unwrap_or(&buf)) {
                ClientHello::Incomplete => {}
                done => return Ok(done),
            }
            if peeked <= seen {
                tokio::time::sleep(PEEK_PAUSE).await;
            }
            seen = peeked;
        }
    };
    tokio::time::timeout(timeout, peek).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "no complete TLS ClientHello in time",
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, pki_types::ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The first bytes a rustls client sends to `name`.
    fn client_hello_bytes(name: &str) -> Vec<u8> {
        let config = ClientConfig::builder_with_provider(super::super::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut client = ClientConnection::new(Arc::new(config), name).unwrap();
        let mut bytes = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut bytes).unwrap();
        }
        bytes
    }

    /// `bytes` with the ASCII case-insensitive occurrence of `needle` replaced by `with`.
    fn replace_ignoring_case(bytes: &mut [u8], needle: &str, with: &str) {
        assert_eq!(needle.len(), with.len());
        let at = bytes
            .windows(needle.len())
            .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
            .expect("the name is in the hello");
        bytes[at..at + with.len()].copy_from_slice(with.as_bytes());
    }

    #[test]
    fn reads_the_server_name_lower_cased() {
        let mut bytes = client_hello_bytes("Shop.Example.com");
        let expected = ClientHello::Hello {
            server_name: Some("shop.example.com".to_owned()),
        };
        assert_eq!(parse(&bytes), expected);
        // Whatever case the client library sends, the name comes back lower-cased.
        replace_ignoring_case(&mut bytes, "shop.example.com", "SHOP.Example.COM");
        assert_eq!(parse(&bytes), expected);
        // Bytes after the first record (early data, the next flight) do not matter.
        bytes.extend_from_slice(&[23, 3, 3, 0, 1, 0]);
        assert_eq!(parse(&bytes), expected);
    }

    #[test]
    fn an_ip_address_sends_no_server_name() {
        let bytes = client_hello_bytes("192.0.2.7");
        assert_eq!(parse(&bytes), ClientHello::Hello { server_name: None });
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let bytes = client_hello_bytes("shop.example.com");
        for end in 0..bytes.len() {
            assert_eq!(parse(&bytes[..end]), ClientHello::Incomplete, "{end} bytes");
        }
    }

    #[test]
    fn plaintext_and_other_records_are_not_tls() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), ClientHello::NotTls);
        assert_eq!(parse(b"G"), ClientHello::NotTls);
        // An application-data record, a ServerHello, a record over 16 KiB, an empty record.
        assert_eq!(parse(&[23, 3, 3, 0, 5]), ClientHello::NotTls);
        assert_eq!(parse(&[22, 3, 3, 0, 60, 2]), ClientHello::NotTls);
        assert_eq!(parse(&[22, 3, 3, 0x40, 0x01]), ClientHello::NotTls);
        assert_eq!(parse(&[22, 3, 3, 0, 0]), ClientHello::NotTls);
        // Not version 3.x.
        assert_eq!(parse(&[22, 0x47]), ClientHello::NotTls);
    }

    #[test]
    fn a_hello_longer_than_its_record_is_not_tls() {
        let mut bytes = client_hello_bytes("shop.example.com");
        // The handshake length claims one byte more than the record holds.
        let len =
            (usize::from(bytes[6]) << 16) | (usize::from(bytes[7]) << 8) | usize::from(bytes[8]);
        let len = len + 1;
        bytes[6..9].copy_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
        assert_eq!(parse(&bytes), ClientHello::NotTls);
    }

    #[test]
    fn malformed_lengths_never_panic() {
        let bytes = client_hello_bytes("shop.example.com");
        for at in 0..bytes.len() {
            for value in [0x00, 0x01, 0x7f, 0xff] {
                let mut mangled = bytes.clone();
                mangled[at] = value;
                let _ = parse(&mangled);
                let _ = parse(&mangled[..at]);
            }
        }
    }

    #[tokio::test]
    async fn peeks_without_consuming() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hello = client_hello_bytes("Shop.Example.com");
        let sent = hello.clone();
        let client = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            // In two parts, so the first peek sees an incomplete hello.
            let (first, second) = sent.split_at(20);
            stream.write_all(first).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            stream.write_all(second).await.unwrap();
            stream
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let peeked = peek_client_hello(&stream, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            peeked,
            ClientHello::Hello {
                server_name: Some("shop.example.com".to_owned())
            }
        );
        let mut read = vec![0u8; hello.len()];
        stream.read_exact(&mut read).await.unwrap();
        assert_eq!(read, hello);
        drop(client.await.unwrap());
    }

    #[tokio::test]
    async fn plaintext_is_told_at_once_and_left_unread() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            stream
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let peeked = peek_client_hello(&stream, Duration::from_secs(5)).await;
        assert_eq!(peeked.unwrap(), ClientHello::NotTls);
        let mut read = [0u8; 16];
        stream.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"GET / HTTP/1.1\r\n");
        drop(client.await.unwrap());
    }

    #[tokio::test]
    async fn an_incomplete_hello_times_out_and_a_closed_connection_is_eof() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();

        let client = tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            stream.write_all(&[22, 3, 1]).await.unwrap();
            stream
        });
        let (stream, _) = listener.accept().await.unwrap();
        let error = peek_client_hello(&stream, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(client.await.unwrap());

        let client = tokio::spawn(async move {
            drop(tokio::net::TcpStream::connect(address).await.unwrap());
        });
        let (stream, _) = listener.accept().await.unwrap();
        client.await.unwrap();
        let error = peek_client_hello(&stream, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }
}
