package org.egressproxy.policy;

import org.egressproxy.match.HostName;
import org.egressproxy.match.IpLiteral;
import org.egressproxy.match.Protocol;

/**
 * A destination as the policy sees it, normalized: a canonical host name or an IP literal, a port
 * and a protocol, for one source ({@link Sources.Source#index()}; 0 for the top-level policy).
 * It is also the decision cache's key, so its hash is computed once.
 */
public final class Destination {
  private final String host; // canonical name, canonical IP text, or the raw text when invalid
  private final IpLiteral ip; // non-null for an IP literal
  private final boolean valid;
  private final int port;
  private final Protocol protocol;
  private final int source;
  private final int hash;

  private Destination(String host, IpLiteral ip, boolean valid, int port, Protocol protocol,
      int source) {
    this.host = host;
    this.ip = ip;
    this.valid = valid;
    this.port = port;
    this.protocol = protocol;
    this.source = source;
    this.hash = ((host.hashCode() * 31 + port) * 31 + protocol.ordinal()) * 31 + source;
  }

  /** {@link #of(String, int, Protocol, int)} for the top-level policy. */
  public static Destination of(String rawHost, int port, Protocol protocol) {
    return of(rawHost, port, protocol, 0);
  }

  /**
   * Normalizes {@code rawHost}: an IP literal (brackets allowed for IPv6), or a DNS name (case,
   * trailing dot, IDN); anything else is an invalid destination that every policy denies.
   */
  public static Destination of(String rawHost, int port, Protocol protocol, int source) {
    if (port < 1 || port > 65535) {
      throw new IllegalArgumentException("port out of range: " + port);
    }
    String name = HostName.normalize(rawHost);
    if (name != null) {
      return new Destination(name, null, true, port, protocol, source);
    }
    IpLiteral ip = IpLiteral.parse(rawHost);
    if (ip != null) {
      return new Destination(ip.toString(), ip, true, port, protocol, source);
    }
    return new Destination(rawHost == null ? "" : rawHost, null, false, port, protocol,
        source);
  }

  /** Canonical host (name or IP text); the raw input when invalid. */
  public String host() {
    return host;
  }

  public IpLiteral ip() {
    return ip;
  }

  public boolean isIp() {
    return ip != null;
  }

  public boolean valid() {
    return valid;
  }

  public int port() {
    return port;
  }

  public Protocol protocol() {
    return protocol;
  }

  /** The index of the source whose policy decides it; 0 for the top-level policy. */
  public int source() {
    return source;
  }

  @Override
  public boolean equals(Object o) {
    if (this == o) {
      return true;
    }
    return o instanceof Destination d && d.hash == hash && d.port == port
        && d.protocol == protocol && d.source == source && d.host.equals(host);
  }

  @Override
  public int hashCode() {
    return hash;
  }

  /** {@code host:port}, with brackets around an IPv6 literal. */
  @Override
  public String toString() {
    return (ip != null && !ip.isIpv4() ? "[" + host + "]" : host) + ":" + port;
  }
}
