package org.egressproxy.it;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/** Hand-built TLS ClientHellos: one commented line per field. */
public final class ClientHellos {
  private ClientHellos() {}

  /**
   * A ClientHello handshake message (type, length, body) naming {@code sni} (none when null),
   * offering {@code alpn}, padded with a fake key share of {@code keyShareBytes} (1,216 is
   * X25519MLKEM768's size).
   */
  public static byte[] handshake(String sni, List<String> alpn, int keyShareBytes, boolean ech) {
    return handshake(sni == null ? List.of() : List.of(sni.getBytes(StandardCharsets.US_ASCII)),
        alpn, keyShareBytes, ech);
  }

  /** The same, with any number of host_name entries given as raw bytes (none: no extension). */
  public static byte[] handshake(List<byte[]> names, List<String> alpn, int keyShareBytes,
      boolean ech) {
    Buf ext = new Buf();
    if (!names.isEmpty()) {
      Buf list = new Buf();
      for (byte[] name : names) {
        list.u8(0); // name_type: host_name
        list.u16(name.length); // host_name length
        list.bytes(name);
      }
      ext.u16(0); // extension type: server_name
      ext.u16(list.size() + 2); // extension length
      ext.u16(list.size()); // server_name_list length
      ext.bytes(list.toByteArray());
    }
    if (!alpn.isEmpty()) {
      Buf list = new Buf();
      for (String p : alpn) {
        list.u8(p.length()); // ProtocolName length
        list.bytes(p.getBytes(StandardCharsets.US_ASCII));
      }
      ext.u16(16); // extension type: application_layer_protocol_negotiation
      ext.u16(list.size() + 2); // extension length
      ext.u16(list.size()); // protocol_name_list length
      ext.bytes(list.toByteArray());
    }
    ext.u16(43); // extension type: supported_versions
    ext.u16(3); // extension length
    ext.u8(2); // versions length
    ext.u16(0x0304); // TLS 1.3
    if (keyShareBytes > 0) {
      ext.u16(51); // extension type: key_share
      ext.u16(keyShareBytes + 6); // extension length
      ext.u16(keyShareBytes + 4); // client_shares length
      ext.u16(0x11ec); // group: X25519MLKEM768
      ext.u16(keyShareBytes); // key_exchange length
      ext.bytes(new byte[keyShareBytes]); // key_exchange (zeros: never read by the proxy)
    }
    if (ech) {
      ext.u16(0xfe0d); // extension type: encrypted_client_hello (GREASE-like content)
      ext.u16(4);
      ext.bytes(new byte[] {0, 0, 1, 0});
    }
    Buf body = new Buf();
    body.u16(0x0303); // legacy_version: TLS 1.2
    body.bytes(new byte[32]); // random
    body.u8(32); // legacy_session_id length
    body.bytes(new byte[32]); // legacy_session_id
    body.u16(4); // cipher_suites length
    body.u16(0x1301); // TLS_AES_128_GCM_SHA256
    body.u16(0x1302); // TLS_AES_256_GCM_SHA384
    body.u8(1); // legacy_compression_methods length
    body.u8(0); // null compression
    body.u16(ext.size()); // extensions length
    body.bytes(ext.toByteArray());
    Buf hs = new Buf();
    hs.u8(1); // handshake type: client_hello
    hs.u24(body.size()); // length
    hs.bytes(body.toByteArray());
    return hs.toByteArray();
  }

  /** The handshake message cut into {@code records} TLS records of type handshake (22). */
  public static byte[] records(byte[] handshake, int records) {
    Buf out = new Buf();
    int per = (handshake.length + records - 1) / records;
    for (int off = 0; off < handshake.length; off += per) {
      int n = Math.min(per, handshake.length - off);
      out.u8(22); // content type: handshake
      out.u16(0x0301); // legacy_record_version
      out.u16(n); // length
      out.bytes(java.util.Arrays.copyOfRange(handshake, off, off + n));
    }
    return out.toByteArray();
  }

  static final class Buf extends ByteArrayOutputStream {
    void u8(int v) {
      write(v);
    }

    void u16(int v) {
      write(v >>> 8);
      write(v);
    }

    void u24(int v) {
      write(v >>> 16);
      write(v >>> 8);
      write(v);
    }

    void bytes(byte[] b) {
      write(b, 0, b.length);
    }
  }
}
