package org.egressproxy.tunnel;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The proxy's own listening sockets, so that it never connects to itself (reason {@code loop}).
 * Without this, a name that resolves to the proxy - possible as soon as {@code
 * allowDestinationCidrs} covers its own address, e.g. the appliance's subnet - makes a transparent
 * listener forward a ClientHello or a request to itself, which forwards it again: one more
 * connection each round, until the file descriptors run out.
 *
 * <p>A listener bound to one address is matched exactly (and by the unspecified address, which
 * the kernel connects to this host); one bound to the wildcard address by every address of this
 * host on its port: loopback, or any interface's.
 */
public final class LoopGuard {
  private final Set<InetSocketAddress> exact = ConcurrentHashMap.newKeySet();
  private final Set<Integer> ports = ConcurrentHashMap.newKeySet();
  private final Set<Integer> wildcardPorts = ConcurrentHashMap.newKeySet();

  /** Registers a bound listening socket. */
  public void add(InetSocketAddress bound) {
    ports.add(bound.getPort());
    if (bound.getAddress().isAnyLocalAddress()) {
      wildcardPorts.add(bound.getPort());
    } else {
      exact.add(new InetSocketAddress(bound.getAddress(), bound.getPort()));
    }
  }

  /** True when connecting to {@code address:port} would reach one of our own listeners. */
  public boolean isSelf(InetAddress address, int port) {
    if (!ports.contains(port)) {
      return false; // the common case: no listener on this port, no further look
    }
    if (address.isAnyLocalAddress() || exact.contains(new InetSocketAddress(address, port))) {
      return true;
    }
    return wildcardPorts.contains(port) && isLocal(address);
  }

  private static boolean isLocal(InetAddress a) {
    if (a.isLoopbackAddress()) {
      return true;
    }
    try {
      return NetworkInterface.getByInetAddress(a) != null;
    } catch (SocketException e) {
      return true; // cannot tell: refusing is the safe side
    }
  }
}
