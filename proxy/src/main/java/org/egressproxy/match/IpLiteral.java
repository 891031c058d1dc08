package org.egressproxy.match;

import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Arrays;

/**
 * An IP address written as a literal: strict dotted-quad IPv4 ({@code 10.0.0.1}; no octal, hex,
 * decimal or short forms) or IPv6 ({@code 2001:db8::1}, optionally in brackets, no zone id). An
 * IPv4-mapped IPv6 address ({@code ::ffff:10.0.0.1}) is the IPv4 address it maps, so that one CIDR
 * rule and one private-range check cover both spellings.
 */
public final class IpLiteral {
  private final byte[] bytes;
  private final String text;

  private IpLiteral(byte[] bytes) {
    this.bytes = bytes;
    this.text = format(bytes);
  }

  /** The address's bytes: 4 for IPv4 (including mapped), 16 for IPv6. A copy. */
  public byte[] bytes() {
    return bytes.clone();
  }

  byte[] rawBytes() {
    return bytes;
  }

  public boolean isIpv4() {
    return bytes.length == 4;
  }

  /** Canonical text: dotted quad, or RFC 5952 compressed IPv6 without brackets. */
  @Override
  public String toString() {
    return text;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof IpLiteral other && Arrays.equals(bytes, other.bytes);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(bytes);
  }

  /**
   * {@code ip:port} for a socket address, as logged and printed: dotted quad, or {@code
   * [v6]:port} with the RFC 5952 text (compressed, lower case, no scope); an unresolved one as
   * {@code host:port}.
   */
  public static String hostPort(java.net.InetSocketAddress a) {
    InetAddress ip = a.getAddress();
    if (ip == null) {
      return a.getHostString() + ":" + a.getPort();
    }
    if (ip instanceof java.net.Inet4Address) {
      return ip.getHostAddress() + ":" + a.getPort();
    }
    IpLiteral l = of(ip);
    return (l.isIpv4() ? l.text : "[" + l.text + "]") + ":" + a.getPort();
  }

  public static IpLiteral of(InetAddress address) {
    return fromBytes(address.getAddress());
  }

  /** Wraps raw address bytes (4 or 16), unmapping IPv4-mapped IPv6. */
  public static IpLiteral fromBytes(byte[] raw) {
    if (raw.length == 16 && isV4Mapped(raw)) {
      return new IpLiteral(Arrays.copyOfRange(raw, 12, 16));
    }
    if (raw.length != 4 && raw.length != 16) {
      throw new IllegalArgumentException("address must be 4 or 16 bytes");
    }
    return new IpLiteral(raw.clone());
  }

  /** Parses {@code s} as an IP literal; {@code null} when it is not one. Never resolves a name. */
  public static IpLiteral parse(String s) {
    if (s == null || s.isEmpty()) {
      return null;
    }
    if (s.charAt(0) == '[') {
      if (s.length() < 3 || s.charAt(s.length() - 1) != ']') {
        return null;
      }
      return parseV6(s.substring(1, s.length() - 1));
    }
    if (s.indexOf(':') >= 0) {
      return parseV6(s);
    }
    byte[] v4 = parseV4(s, 0, s.length());
    return v4 == null ? null : new IpLiteral(v4);
  }

  /** Strict dotted quad: four decimal parts 0-255, no leading zeros, nothing else. */
  static byte[] parseV4(String s, int from, int to) {
    byte[] out = new byte[4];
    int part = 0;
    int i = from;
    while (part < 4) {
      int start = i;
      int value = 0;
      while (i < to && s.charAt(i) >= '0' && s.charAt(i) <= '9') {
        value = value * 10 + (s.charAt(i) - '0');
        i++;
        if (i - start > 3) {
          return null;
        }
      }
      int digits = i - start;
      if (digits == 0 || value > 255 || (digits > 1 && s.charAt(start) == '0')) {
        return null;
      }
      out[part++] = (byte) value;
      if (part < 4) {
        if (i >= to || s.charAt(i) != '.') {
          return null;
        }
        i++;
      }
    }
    return i == to ? out : null;
  }

  private static IpLiteral parseV6(String s) {
    // Only hex digits, colons and (for an embedded IPv4 tail) dots, and at least two colons:
    // InetAddress then parses the literal itself and can never fall back to a name lookup
    // (without a colon, "[cafe]" would be looked up as a host name and "[2130706433]" read as
    // an IPv4 address). Zone ids ('%') are refused.
    if (s.length() < 2 || s.length() > 45 || s.indexOf(':') == s.lastIndexOf(':')) {
      return null;
    }
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      boolean ok =
          (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':'
              || c == '.';
      if (!ok) {
        return null;
      }
    }
    int dot = s.indexOf('.');
    if (dot >= 0) {
      int tail = s.lastIndexOf(':') + 1;
      if (tail == 0 || dot < tail || parseV4(s, tail, s.length()) == null) {
        return null;
      }
    }
    try {
      InetAddress a = InetAddress.getByName(s);
      if (!(a instanceof Inet6Address) && a.getAddress().length != 4) {
        return null;
      }
      return fromBytes(a.getAddress());
    } catch (UnknownHostException | IllegalArgumentException e) {
      return null;
    }
  }

  private static boolean isV4Mapped(byte[] b) {
    for (int i = 0; i < 10; i++) {
      if (b[i] != 0) {
        return false;
      }
    }
    return b[10] == (byte) 0xff && b[11] == (byte) 0xff;
  }

  private static String format(byte[] b) {
    if (b.length == 4) {
      return (b[0] & 0xff) + "." + (b[1] & 0xff) + "." + (b[2] & 0xff) + "." + (b[3] & 0xff);
    }
    int[] words = new int[8];
    for (int i = 0; i < 8; i++) {
      words[i] = ((b[2 * i] & 0xff) << 8) | (b[2 * i + 1] & 0xff);
    }
    // RFC 5952: compress the longest run (length >= 2) of zero words, the first one on ties.
    int bestStart = -1;
    int bestLen = 0;
    for (int i = 0; i < 8; ) {
      if (words[i] != 0) {
        i++;
        continue;
      }
      int j = i;
      while (j < 8 && words[j] == 0) {
        j++;
      }
      if (j - i > bestLen && j - i >= 2) {
        bestStart = i;
        bestLen = j - i;
      }
      i = j;
    }
    StringBuilder sb = new StringBuilder(39);
    for (int i = 0; i < 8; i++) {
      if (i == bestStart) {
        sb.append("::");
        i += bestLen - 1;
        continue;
      }
      if (sb.length() > 0 && sb.charAt(sb.length() - 1) != ':') {
        sb.append(':');
      }
      sb.append(Integer.toHexString(words[i]));
    }
    return sb.toString();
  }
}
