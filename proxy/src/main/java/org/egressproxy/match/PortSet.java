package org.egressproxy.match;

import java.util.Arrays;
import java.util.stream.Collectors;

/** The ports a rule applies to: every port, or a small sorted set. Immutable. */
public final class PortSet {
  public static final PortSet ALL = new PortSet(null);
  public static final PortSet HTTPS = new PortSet(new int[] {443});
  public static final PortSet HTTP = new PortSet(new int[] {80});

  private final int[] ports; // null = all

  private PortSet(int[] ports) {
    this.ports = ports;
  }

  /** The set of {@code ports} (each 1-65535); shares the common instances. */
  public static PortSet of(int... ports) {
    int[] sorted = Arrays.stream(ports).sorted().distinct().toArray();
    for (int p : sorted) {
      if (p < 1 || p > 65535) {
        throw new IllegalArgumentException("port out of range: " + p);
      }
    }
    if (Arrays.equals(sorted, HTTPS.ports)) {
      return HTTPS;
    }
    if (Arrays.equals(sorted, HTTP.ports)) {
      return HTTP;
    }
    return new PortSet(sorted);
  }

  public boolean contains(int port) {
    if (ports == null) {
      return true;
    }
    for (int p : ports) {
      if (p == port) {
        return true;
      }
    }
    return false;
  }

  public boolean isAll() {
    return ports == null;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof PortSet other && Arrays.equals(ports, other.ports);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(ports);
  }

  /** {@code any} or {@code 443,8140}. */
  @Override
  public String toString() {
    return ports == null
        ? "any"
        : Arrays.stream(ports).mapToObj(Integer::toString).collect(Collectors.joining(","));
  }
}
