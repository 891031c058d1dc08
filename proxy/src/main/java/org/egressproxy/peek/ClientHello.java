package org.egressproxy.peek;

import io.netty.buffer.ByteBuf;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * What the proxy reads from a TLS ClientHello without terminating TLS: the server name, the
 * offered ALPN protocols, and whether an Encrypted Client Hello extension is present. A pure
 * function over the handshake message body (after the 4-byte handshake header), reading at
 * offsets with every length checked against what is left; it never moves the buffer's indices.
 *
 * <pre>
 * struct {                                   RFC 8446 4.1.2
 *     ProtocolVersion legacy_version;        2
 *     Random random;                         32
 *     opaque legacy_session_id&lt;0..32&gt;;      1 + n
 *     CipherSuite cipher_suites&lt;2..2^16-2&gt;;  2 + n
 *     opaque legacy_compression_methods&lt;1..2^8-1&gt;;  1 + n
 *     Extension extensions&lt;8..2^16-1&gt;;      2 + n: { uint16 type; opaque data&lt;0..2^16-1&gt; }
 * } ClientHello;
 * server_name (0):  ServerNameList { NameType(1) name_type; HostName&lt;1..2^16-1&gt; } &lt;1..2^16-1&gt;
 * ALPN (16):        ProtocolNameList { ProtocolName&lt;1..2^8-1&gt; } &lt;2..2^16-1&gt;
 * encrypted_client_hello: 0xfe0d
 * </pre>
 *
 * @param serverName the host_name, or {@code null} when there is none
 * @param serverNames how many host_name entries the extension carried (more than one is refused)
 * @param alpn the offered protocols, in order
 * @param ech whether the encrypted_client_hello extension is present (Chrome sends it as GREASE)
 */
public record ClientHello(String serverName, int serverNames, List<String> alpn, boolean ech) {
  static final int EXT_SERVER_NAME = 0;
  static final int EXT_ALPN = 16;
  static final int EXT_ECH = 0xfe0d;

  /** Thrown for a ClientHello whose lengths do not add up. */
  public static final class MalformedException extends Exception {
    private static final long serialVersionUID = 1L;

    MalformedException(String message) {
      super(message, null, false, false);
    }
  }

  /**
   * Parses the ClientHello body in {@code buf} between its reader and writer index.
   *
   * @throws MalformedException when a length runs past its enclosing structure
   */
  public static ClientHello parse(ByteBuf buf) throws MalformedException {
    int p = buf.readerIndex();
    final int end = buf.writerIndex();
    p = skip(p, 2 + 32, end, "version and random");
    p = skip(p, 1 + u8(buf, p, end), end, "session id");
    p = skip(p, 2 + u16(buf, p, end), end, "cipher suites");
    p = skip(p, 1 + u8(buf, p, end), end, "compression methods");
    if (p == end) {
      return new ClientHello(null, 0, List.of(), false); // no extensions at all
    }
    int extEnd = p + 2 + u16(buf, p, end);
    if (extEnd > end) {
      throw new MalformedException("extensions run past the ClientHello");
    }
    p += 2;
    String serverName = null;
    int serverNames = 0;
    List<String> alpn = List.of();
    boolean ech = false;
    boolean seenSni = false;
    boolean seenAlpn = false;
    while (p < extEnd) {
      int type = u16(buf, p, extEnd);
      int len = u16(buf, p + 2, extEnd);
      int dataStart = p + 4;
      int dataEnd = dataStart + len;
      if (dataEnd > extEnd) {
        throw new MalformedException("extension " + type + " runs past the extensions");
      }
      if (type == EXT_SERVER_NAME) {
        if (seenSni) {
          throw new MalformedException("two server_name extensions");
        }
        seenSni = true;
        int listEnd = dataStart + 2 + u16(buf, dataStart, dataEnd);
        if (listEnd != dataEnd) {
          throw new MalformedException("server_name list length does not match the extension");
        }
        int q = dataStart + 2;
        while (q < listEnd) {
          int nameType = u8(buf, q, listEnd);
          int nameLen = u16(buf, q + 1, listEnd);
          int nameEnd = q + 3 + nameLen;
          if (nameEnd > listEnd || nameLen == 0) {
            throw new MalformedException("server name length runs past the list");
          }
          if (nameType == 0) {
            serverNames++;
            if (serverName == null) {
              serverName = buf.toString(q + 3, nameLen, StandardCharsets.ISO_8859_1);
            }
          }
          q = nameEnd;
        }
      } else if (type == EXT_ALPN) {
        if (seenAlpn) {
          throw new MalformedException("two ALPN extensions");
        }
        seenAlpn = true;
        int listEnd = dataStart + 2 + u16(buf, dataStart, dataEnd);
        if (listEnd != dataEnd) {
          throw new MalformedException("ALPN list length does not match the extension");
        }
        List<String> protocols = new ArrayList<>(4);
        int q = dataStart + 2;
        while (q < listEnd) {
          int l = u8(buf, q, listEnd);
          if (l == 0 || q + 1 + l > listEnd) {
            throw new MalformedException("ALPN protocol length runs past the list");
          }
          protocols.add(buf.toString(q + 1, l, StandardCharsets.ISO_8859_1));
          q += 1 + l;
        }
        alpn = List.copyOf(protocols);
      } else if (type == EXT_ECH) {
        ech = true;
      }
      p = dataEnd;
    }
    return new ClientHello(serverName, serverNames, alpn, ech);
  }

  /**
   * RFC 6066: a host_name is ASCII (an IDN as its A-labels). False when the name holds a control
   * character, a space or a byte over 0x7e: such a name would be decided as one name (its bytes
   * read as Latin-1) and could mean another to the server.
   */
  public boolean serverNameIsAscii() {
    if (serverName == null) {
      return false;
    }
    for (int i = 0; i < serverName.length(); i++) {
      char c = serverName.charAt(i);
      if (c <= 0x20 || c >= 0x7f) {
        return false;
      }
    }
    return true;
  }

  private static int skip(int p, int n, int end, String what) throws MalformedException {
    if (p + n > end) {
      throw new MalformedException(what + " runs past the ClientHello");
    }
    return p + n;
  }

  private static int u8(ByteBuf b, int p, int end) throws MalformedException {
    if (p + 1 > end) {
      throw new MalformedException("truncated ClientHello");
    }
    return b.getUnsignedByte(p);
  }

  private static int u16(ByteBuf b, int p, int end) throws MalformedException {
    if (p + 2 > end) {
      throw new MalformedException("truncated ClientHello");
    }
    return b.getUnsignedShort(p);
  }
}
