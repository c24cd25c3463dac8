//! The dnstap message schema (`dnstap.proto` of dnstap.info), the fields
//! an authoritative server fills.

/// The outer `Dnstap` message.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    /// The server's name, when configured.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    /// The software and its version.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    /// The logged DNS message.
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
    /// Always `MESSAGE` (1).
    #[prost(int32, required, tag = "15")]
    pub r#type: i32,
}

/// `Dnstap.Type.MESSAGE`.
pub const DNSTAP_MESSAGE: i32 = 1;
/// `Message.Type.AUTH_RESPONSE`: a response of an authoritative server.
pub const AUTH_RESPONSE: i32 = 2;
/// `SocketFamily.INET`.
pub const INET: i32 = 1;
/// `SocketFamily.INET6`.
pub const INET6: i32 = 2;
/// `SocketProtocol.UDP`.
pub const UDP: i32 = 1;
/// `SocketProtocol.TCP`.
pub const TCP: i32 = 2;

/// One DNS message and where it went.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// What kind of message (here `AUTH_RESPONSE`).
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    /// `INET` or `INET6`.
    #[prost(int32, optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// `UDP` or `TCP`.
    #[prost(int32, optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    /// The client's address, possibly truncated.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    /// The client's port.
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    /// When the query arrived: seconds since the Unix epoch.
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    /// And nanoseconds.
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    /// When the response was made: seconds since the Unix epoch.
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    /// And nanoseconds.
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    /// The response in wire format.
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
}
