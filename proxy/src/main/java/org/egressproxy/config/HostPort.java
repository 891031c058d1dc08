package org.egressproxy.config;

import org.egressproxy.match.IpLiteral;

/** A listening address: an IP literal and a port, written {@code 127.0.0.1:3128} or {@code [::]:3128}. */
public record HostPort(IpLiteral address, int port) {

  /** Parses the text, or returns {@code null}. */
  public static HostPort parse(String text) {
    int colon = text.lastIndexOf(':');
    if (colon <= 0 || colon == text.length() - 1) {
      return null;
    }
    String host = text.substring(0, colon);
    String port = text.substring(colon + 1);
    if (host.indexOf(':') >= 0 && !(host.startsWith("[") && host.endsWith("]"))) {
      return null; // an IPv6 address needs brackets before the port
    }
    IpLiteral ip = IpLiteral.parse(host);
    if (ip == null || port.length() > 5 || !port.chars().allMatch(c -> c >= '0' && c <= '9')) {
      return null;
    }
    int p = Integer.parseInt(port);
    return p >= 0 && p <= 65535 ? new HostPort(ip, p) : null;
  }

  @Override
  public String toString() {
    return (address.isIpv4() ? address.toString() : "[" + address + "]") + ":" + port;
  }
}
