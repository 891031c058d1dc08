package org.egressproxy.tunnel;

import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoop;
import io.netty.channel.EventLoopGroup;
import io.netty.resolver.HostsFileEntriesResolver;
import io.netty.resolver.ResolvedAddressTypes;
import io.netty.resolver.dns.DnsNameResolver;
import io.netty.resolver.dns.DnsNameResolverBuilder;
import io.netty.resolver.dns.DnsServerAddressStreamProviders;
import io.netty.resolver.dns.SequentialDnsServerAddressStreamProvider;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.egressproxy.config.Config;
import org.egressproxy.config.HostPort;
import org.egressproxy.match.IpLiteral;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.Transport;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.Destination;

/**
 * Resolves an authorized destination and connects to it. The address is the one this proxy
 * resolves for the name it authorized ({@code resolver.hosts} first, then /etc/hosts, then DNS
 * with its TTLs), never one the client chose; resolved addresses in private ranges are dropped
 * unless {@code allowDestinationCidrs} covers them, and so are this proxy's own listeners ({@link
 * LoopGuard}); the remaining addresses are tried in order, each with the connect timeout.
 */
public final class UpstreamConnector implements AutoCloseable {
  /** Why a connection could not be made: what the refusal says. */
  public enum Failure {
    UNRESOLVABLE,
    PRIVATE_DESTINATION,
    /** Every address is one of this proxy's own listeners ({@link LoopGuard}). */
    LOOP,
    /** No answer from the name servers within {@code timeouts.dns}. */
    DNS_TIMEOUT,
    REFUSED,
    TIMEOUT
  }

  /** A failed connect. */
  public static final class UpstreamException extends Exception {
    private static final long serialVersionUID = 1L;
    private final Failure failure;

    UpstreamException(Failure failure, String message) {
      super(message, null, false, false);
      this.failure = failure;
    }

    public Failure failure() {
      return failure;
    }
  }

  private final Transport transport;
  /** One resolver per event loop, created on first use, so a lookup never changes thread. */
  private final java.util.concurrent.ConcurrentHashMap<EventLoop, DnsNameResolver> resolvers =
      new java.util.concurrent.ConcurrentHashMap<>();
  private final java.util.function.Function<EventLoop, DnsNameResolver> newResolver;
  private final Map<String, IpLiteral> hosts;
  private final Config.ParentProxy parent;
  private final InetSocketAddress parentAddress;
  private final org.egressproxy.match.NameTrie<Bypass> noProxyNames;
  private final org.egressproxy.match.CidrTrie<Bypass> noProxyCidrs;

  /** A noProxy entry: matches on every port and protocol. */
  private enum Bypass implements org.egressproxy.match.MatchEntry {
    ANY;

    @Override
    public boolean isDeny() {
      return false;
    }

    @Override
    public boolean accepts(int port, int protocol) {
      return true;
    }
  }
  private final long connectTimeoutMillis;
  private final long dnsTimeoutMillis;
  private final ProxyMetrics metrics;
  private final LoopGuard loopGuard;

  public UpstreamConnector(Transport transport, Config config, ProxyMetrics metrics,
      LoopGuard loopGuard) {
    this.transport = transport;
    this.loopGuard = loopGuard;
    this.parent = config.parentProxy();
    var names = org.egressproxy.match.NameTrie.builder(Bypass.class);
    var cidrs = org.egressproxy.match.CidrTrie.builder(Bypass.class);
    if (parent != null) {
      for (String p : parent.noProxy()) {
        try {
          if (org.egressproxy.match.Cidr.looksLikeCidr(p)) {
            cidrs.add(org.egressproxy.match.Cidr.parse(p), Bypass.ANY);
          } else {
            names.add(org.egressproxy.match.NamePattern.parse(p), Bypass.ANY);
          }
        } catch (org.egressproxy.match.PatternException e) {
          throw new IllegalArgumentException(e.getMessage(), e); // validated when loaded
        }
      }
    }
    this.noProxyNames = names.build();
    this.noProxyCidrs = cidrs.build();
    // Resolved once, at start: the parent proxy is infrastructure, not a destination.
    this.parentAddress = parent == null ? null : new InetSocketAddress(parent.host(), parent.port());
    this.hosts = config.resolverHosts();
    this.connectTimeoutMillis = config.timeouts().connect().toMillis();
    this.dnsTimeoutMillis = config.timeouts().dns().toMillis();
    this.metrics = metrics;
    List<InetSocketAddress> servers = new ArrayList<>();
    for (HostPort hp : config.resolverServers()) {
      servers.add(new InetSocketAddress(inet(hp.address()), hp.port()));
    }
    long dnsTimeout = config.timeouts().dns().toMillis();
    this.newResolver = loop -> {
      DnsNameResolverBuilder b = new DnsNameResolverBuilder(loop)
        .datagramChannelType(transport.datagramChannel())
        .socketChannelType(transport.socketChannel())
        .queryTimeoutMillis(dnsTimeout)
        .resolvedAddressTypes(ResolvedAddressTypes.IPV4_PREFERRED)
        .hostsFileEntriesResolver(this::fromHosts)
        // The name decided is the name looked up: no search domains from resolv.conf appended
        // (an unknown name under an allowed wildcard must not resolve as name.<search domain>)
        .searchDomains(List.of())
        .nameServerProvider(servers.isEmpty()
            ? DnsServerAddressStreamProviders.platformDefault()
            : new SequentialDnsServerAddressStreamProvider(servers));
      return b.build();
    };
  }

  private InetAddress fromHosts(String name, ResolvedAddressTypes types) {
    IpLiteral ip = hosts.get(name.toLowerCase(java.util.Locale.ROOT));
    if (ip != null) {
      return inet(ip);
    }
    return HostsFileEntriesResolver.DEFAULT.address(name, types);
  }

  public static InetAddress inet(IpLiteral ip) {
    try {
      return InetAddress.getByAddress(ip.bytes());
    } catch (UnknownHostException e) {
      throw new IllegalArgumentException(e);
    }
  }

  /**
   * Connects to {@code d} on {@code loop} (the client's loop, so both channels share a thread).
   * The new channel has auto-read off and an empty pipeline but for {@code init}.
   */
  public Future<Channel> connect(EventLoop loop, Destination d, CompiledPolicy policy,
      ChannelInitializer<Channel> init) {
    Promise<Channel> promise = loop.newPromise();
    if (parent != null && !bypassesParent(d)) {
      loop.execute(() -> viaParent(loop, d, init, promise)); // after the batch: see tryConnect
      return promise;
    }
    if (d.isIp()) {
      connectTo(loop, d, List.of(inet(d.ip())), init, promise);
      return promise;
    }
    IpLiteral pinned = hosts.get(d.host());
    if (pinned != null) { // resolver.hosts: no lookup at all
      if (policy.refuses(pinned)) {
        promise.tryFailure(new UpstreamException(Failure.PRIVATE_DESTINATION,
            d.host() + " is set to the private address " + pinned + " in resolver.hosts"));
      } else {
        connectTo(loop, d, List.of(inet(pinned)), init, promise);
      }
      return promise;
    }
    DnsNameResolver resolver = resolvers.computeIfAbsent(loop, newResolver);
    // The whole resolution - retries, both address families, search domains - within
    // timeouts.dns, whatever the resolver does per query.
    io.netty.util.concurrent.ScheduledFuture<?> deadline = loop.schedule(
        () -> promise.tryFailure(new UpstreamException(Failure.DNS_TIMEOUT, d.host()
            + ": no answer from the name servers within " + dnsTimeoutMillis + " ms")),
        dnsTimeoutMillis, TimeUnit.MILLISECONDS);
    resolver.resolveAll(d.host()).addListener((Future<List<InetAddress>> f) -> {
      deadline.cancel(false);
      if (promise.isDone()) {
        return;
      }
      if (!f.isSuccess()) {
        boolean timeout = hasCause(f.cause(),
            io.netty.resolver.dns.DnsNameResolverTimeoutException.class);
        promise.tryFailure(timeout
            ? new UpstreamException(Failure.DNS_TIMEOUT, d.host()
                + ": no answer from the name servers within " + dnsTimeoutMillis + " ms")
            : new UpstreamException(Failure.UNRESOLVABLE, d.host() + " does not resolve"));
        return;
      }
      List<InetAddress> usable = new ArrayList<>();
      for (InetAddress a : f.getNow()) {
        if (!policy.refuses(IpLiteral.of(a))) {
          usable.add(a);
        }
      }
      if (usable.isEmpty()) {
        promise.tryFailure(new UpstreamException(Failure.PRIVATE_DESTINATION,
            d.host() + " resolves only to private or reserved addresses " + f.getNow()));
        return;
      }
      connectTo(loop, d, usable, init, promise); // already on the loop
    });
    return promise;
  }

  /** Leaves out this proxy's own listeners, then tries the other addresses in order. */
  private void connectTo(EventLoop loop, Destination d, List<InetAddress> addresses,
      ChannelInitializer<Channel> init, Promise<Channel> promise) {
    List<InetAddress> others = new ArrayList<>(addresses.size());
    for (InetAddress a : addresses) {
      if (!loopGuard.isSelf(a, d.port())) {
        others.add(a);
      }
    }
    if (others.isEmpty()) {
      promise.tryFailure(new UpstreamException(Failure.LOOP, d + " is this proxy's own listener ("
          + addresses.get(0).getHostAddress() + ":" + d.port() + ")"));
      return;
    }
    loop.execute(() -> tryConnect(loop, others, 0, d.port(), init, promise, null));
  }

  private static boolean hasCause(Throwable t, Class<? extends Throwable> type) {
    for (int depth = 0; t != null && depth < 10; t = t.getCause(), depth++) {
      if (type.isInstance(t)) {
        return true;
      }
    }
    return false;
  }

  private boolean bypassesParent(Destination d) {
    return d.isIp() ? noProxyCidrs.find(d.ip(), d.port(), 1) != null
        : noProxyNames.find(d.host(), d.port(), 1) != null;
  }

  /**
   * Through the parent proxy: it is asked for the authorized name (it resolves it); the policy
   * has already decided here.
   */
  private void viaParent(EventLoop loop, Destination d, ChannelInitializer<Channel> init,
      Promise<Channel> promise) {
    if (promise.isDone()) {
      return; // cancelled: the client went away first
    }
    io.netty.handler.proxy.ProxyHandler handler = parent.scheme().equals("socks5")
        ? new io.netty.handler.proxy.Socks5ProxyHandler(parentAddress)
        : new io.netty.handler.proxy.HttpProxyHandler(parentAddress);
    handler.setConnectTimeoutMillis(connectTimeoutMillis);
    long start = System.nanoTime();
    InetSocketAddress target = d.isIp()
        ? new InetSocketAddress(inet(d.ip()), d.port())
        : InetSocketAddress.createUnresolved(d.host(), d.port());
    ChannelFuture cf = new Bootstrap()
        .group(loop)
        .channel(transport.socketChannel())
        .resolver(io.netty.resolver.NoopAddressResolverGroup.INSTANCE)
        .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) connectTimeoutMillis)
        .option(ChannelOption.AUTO_READ, false)
        .option(ChannelOption.ALLOW_HALF_CLOSURE, true)
        .option(ChannelOption.WRITE_BUFFER_WATER_MARK, org.egressproxy.net.ProxyServer.WATER_MARK)
        .option(ChannelOption.RCVBUF_ALLOCATOR, org.egressproxy.net.ProxyServer.READS)
        .handler(new ChannelInitializer<Channel>() {
          @Override
          protected void initChannel(Channel ch) {
            ch.pipeline().addLast("parent-proxy", handler);
            ch.pipeline().addLast(init);
          }
        })
        .connect(target);
    cf.addListener((ChannelFuture f) -> {
      if (!f.isSuccess()) {
        promise.tryFailure(new UpstreamException(Failure.REFUSED,
            "parent proxy " + parent.host() + ":" + parent.port() + ": "
                + f.cause().getMessage()));
        return;
      }
      f.channel().read(); // the parent's answer to CONNECT must be read with auto-read off
    });
    handler.connectFuture().addListener((Future<Channel> f) -> {
      if (f.isSuccess()) {
        metrics.upstreamConnect().record(System.nanoTime() - start, TimeUnit.NANOSECONDS);
        if (!promise.trySuccess(f.getNow())) {
          f.getNow().close();
        }
      } else {
        boolean timeout = f.cause() instanceof io.netty.handler.proxy.ProxyConnectException
            && String.valueOf(f.cause().getMessage()).contains("timeout");
        promise.tryFailure(new UpstreamException(timeout ? Failure.TIMEOUT : Failure.REFUSED,
            parentFailure(f.cause())));
      }
    });
  }

  /**
   * What the parent proxy said, for the client: Netty's message for it ("http, none,
   * /127.0.0.1:40000 => host/&lt;unresolved&gt;:443, status: 503 Service Unavailable") cut to its
   * last part and said to be the parent's.
   */
  private String parentFailure(Throwable cause) {
    String m = String.valueOf(cause.getMessage());
    int status = m.lastIndexOf("status: ");
    if (status >= 0) {
      return "parent proxy " + parent.host() + ":" + parent.port() + " answered "
          + m.substring(status + 8);
    }
    int arrow = m.indexOf(" => ");
    int last = m.lastIndexOf(", ");
    return "parent proxy " + parent.host() + ":" + parent.port() + ": "
        + (arrow >= 0 && last > arrow ? m.substring(last + 2) : m);
  }

  /**
   * Connects to the addresses in turn. Always called from a task of {@code loop}, never while
   * the loop works through a batch of epoll events: the kernel hands out the lowest free file
   * descriptor, so a socket made in the middle of a batch gets the number of one closed earlier
   * in it, and Netty would hand it that socket's events still later in the batch (an old FIN
   * closed the new connection while it connected). Tasks run after the batch.
   */
  private void tryConnect(EventLoop loop, List<InetAddress> addresses, int index, int port,
      ChannelInitializer<Channel> init, Promise<Channel> promise, Throwable last) {
    if (promise.isDone()) {
      return; // cancelled: the client went away while its name was looked up
    }
    if (index >= addresses.size()) {
      boolean timeout = last instanceof io.netty.channel.ConnectTimeoutException;
      promise.tryFailure(new UpstreamException(timeout ? Failure.TIMEOUT : Failure.REFUSED,
          (timeout ? "connect timed out: " : "connect failed: ")
              + (last == null ? "no address" : last.getMessage() != null ? last.getMessage()
                  : last.getClass().getSimpleName())));
      return;
    }
    long start = System.nanoTime();
    InetAddress address = addresses.get(index);
    ChannelFuture cf = new Bootstrap()
        .group(loop)
        .channelFactory(transport.socketChannelFor(address))
        .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, (int) connectTimeoutMillis)
        .option(ChannelOption.AUTO_READ, false)
        .option(ChannelOption.ALLOW_HALF_CLOSURE, true)
        .option(ChannelOption.WRITE_BUFFER_WATER_MARK, org.egressproxy.net.ProxyServer.WATER_MARK)
        .option(ChannelOption.RCVBUF_ALLOCATOR, org.egressproxy.net.ProxyServer.READS)
        .handler(init)
        .connect(new InetSocketAddress(address, port));
    // A client that goes away cancels the promise: stop the connect (its SYNs) there and then.
    promise.addListener(p -> {
      if (p.isCancelled()) {
        cf.channel().close();
      }
    });
    cf.addListener((ChannelFuture f) -> {
      if (f.isSuccess()) {
        metrics.upstreamConnect().record(System.nanoTime() - start, TimeUnit.NANOSECONDS);
        if (!promise.trySuccess(f.channel())) {
          f.channel().close(); // the promise was settled already: this connection is not used
        }
      } else {
        loop.execute(() -> tryConnect(loop, addresses, index + 1, port, init, promise,
            f.cause()));
      }
    });
  }

  @Override
  public void close() {
    resolvers.values().forEach(DnsNameResolver::close);
    resolvers.clear();
  }
}
