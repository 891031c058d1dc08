package org.egressproxy.net;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.channel.epoll.EpollChannelOption;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.egressproxy.config.Config;
import org.egressproxy.http.HttpForwarder;
import org.egressproxy.http.HttpProxyHandler;
import org.egressproxy.http.ProxyHttpCodec;
import org.egressproxy.log.DecisionLog;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.policy.Decider;
import org.egressproxy.tunnel.TlsSniHandler;
import org.egressproxy.tunnel.UpstreamConnector;

/**
 * The data plane: binds every listener on the selected transport and builds each connection's
 * pipeline by listener mode ({@link PipelineNames} shows the order).
 */
public final class ProxyServer implements AutoCloseable {
  /** Request line and header limits of the HTTP listeners; larger heads get a 431. */
  public static final int MAX_INITIAL_LINE = 8 * 1024;
  public static final int MAX_HEADER_SIZE = 16 * 1024;
  /** What one side may hold for a slow peer before the other side stops reading. */
  public static final WriteBufferWaterMark WATER_MARK =
      new WriteBufferWaterMark(128 * 1024, 256 * 1024);
  /** The largest single read. */
  public static final int MAX_READ = 256 * 1024;
  /** Reads grow from 2 KiB to 256 KiB as a connection streams: fewer system calls in bulk. */
  public static final io.netty.channel.AdaptiveRecvByteBufAllocator READS =
      new io.netty.channel.AdaptiveRecvByteBufAllocator(512, 2048, MAX_READ);

  /** A listener that could not be bound: the message says which and why. */
  public static final class BindException extends Exception {
    private static final long serialVersionUID = 1L;

    BindException(String message, Throwable cause) {
      super(message, cause);
    }
  }

  private final Transport transport;
  private final EventLoopGroup workers;
  private final ProxyRuntime runtime;
  private final ChannelGroup listening = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
  private final ChannelGroup clients = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
  private final Map<String, InetSocketAddress> bound = new LinkedHashMap<>();

  private final Map<String, ProxyTls.Material> tls;
  private final org.egressproxy.tunnel.LoopGuard loopGuard = new org.egressproxy.tunnel.LoopGuard();

  public ProxyServer(Config config, Decider decider, DecisionLog log, ProxyMetrics metrics,
      Transport transport) {
    this(config, decider, log, metrics, transport, Map.of());
  }

  /** @param tls TLS material of the listeners that have {@code tls:}, by listener name */
  public ProxyServer(Config config, Decider decider, DecisionLog log, ProxyMetrics metrics,
      Transport transport, Map<String, ProxyTls.Material> tls) {
    this.tls = Map.copyOf(tls);
    this.transport = transport;
    // One event loop per core: client and upstream of a tunnel share one, no hand-offs. The
    // loops accept too: no thread of its own to wake for each new connection.
    this.workers = transport.newGroup(Runtime.getRuntime().availableProcessors(), "egress-io");
    UpstreamConnector connector = new UpstreamConnector(transport, config, metrics, loopGuard);
    this.runtime = new ProxyRuntime(decider, connector, log, metrics, config.timeouts(),
        config.tunnel(), new ConnectionLimits(config.limits()));
  }

  public Transport transport() {
    return transport;
  }

  public ProxyRuntime runtime() {
    return runtime;
  }

  /** Binds every listener; on the first failure, unbinds the others and throws. */
  public void start(List<Config.Listener> listeners) throws BindException {
    for (Config.Listener l : listeners) {
      runtime.metrics().listener(l.name()); // its meters exist (at zero) from the start
      InetSocketAddress addr = new InetSocketAddress(
          org.egressproxy.tunnel.UpstreamConnector.inet(l.bind().address()), l.bind().port());
      ServerBootstrap b = new ServerBootstrap()
          .group(workers, workers)
          .channelFactory(transport.serverChannelFor(addr.getAddress()))
          .option(ChannelOption.SO_BACKLOG, 1024)
          .option(ChannelOption.SO_REUSEADDR, true)
          .childOption(ChannelOption.ALLOW_HALF_CLOSURE, true)
          .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, WATER_MARK)
          .childOption(ChannelOption.RCVBUF_ALLOCATOR, READS)
          .childHandler(initializer(l));
      if (l.transparent()) {
        if (!transport.transparentCapable()) {
          close();
          throw new BindException(l.at() + ": listener '" + l.name() + "': transparent: true"
              + " needs Netty's native epoll transport (IP_TRANSPARENT), but this process uses "
              + transport.name() + (transport.fallbackReason() == null ? ""
                  : ": " + transport.fallbackReason()), null);
        }
        // TPROXY hands this socket connections addressed to other hosts; the kernel lets a
        // socket take them only with IP_TRANSPARENT (which needs CAP_NET_ADMIN or CAP_NET_RAW).
        b.option(EpollChannelOption.IP_TRANSPARENT, true);
      }
      try {
        Channel ch = b.bind(addr).sync().channel();
        listening.add(ch);
        if (l.transparent() && !ch.config().getOption(EpollChannelOption.IP_TRANSPARENT)) {
          // Netty only logs a channel option it could not set
          throw new java.io.IOException("IP_TRANSPARENT could not be set on the socket (it needs"
              + " CAP_NET_ADMIN or CAP_NET_RAW)");
        }
        bound.put(l.name(), (InetSocketAddress) ch.localAddress());
        loopGuard.add((InetSocketAddress) ch.localAddress());
      } catch (Exception e) {
        close();
        throw new BindException("cannot bind listener '" + l.name() + "' (" + l.mode().id()
            + ") to " + l.bind() + ": " + e.getMessage(), e);
      }
    }
  }

  /**
   * Our own listening sockets, never a destination; the admin listener registers itself here
   * too.
   */
  public org.egressproxy.tunnel.LoopGuard loopGuard() {
    return loopGuard;
  }

  /** Open client connections (for tests, and the admin page later). */
  public ChannelGroup clientChannels() {
    return clients;
  }

  /** Where each listener is bound (its real port when the configuration said 0). */
  public Map<String, InetSocketAddress> boundAddresses() {
    return Map.copyOf(bound);
  }

  private ChannelInitializer<Channel> initializer(Config.Listener l) {
    long idleMs = runtime.timeouts().idle().toMillis();
    return new ChannelInitializer<>() {
      @Override
      protected void initChannel(Channel ch) {
        clients.add(ch);
        ch.pipeline().addLast(PipelineNames.IDLE,
            new IdleStateHandler(0, 0, idleMs, TimeUnit.MILLISECONDS));
        ch.pipeline().addLast(PipelineNames.TRACKER, new ConnectionTracker(l.name(), runtime,
            l.mode() != Config.Listener.Mode.TLS_SNI && !tls.containsKey(l.name()),
            l.transparent()));
        switch (l.mode()) {
          case HTTP_PROXY -> {
            ProxyTls.Material m = tls.get(l.name());
            if (m != null) { // an HTTPS proxy: TLS to the proxy itself, then plain HTTP inside
              ch.pipeline().addLast(PipelineNames.TLS, m.context().newHandler(ch.alloc()));
            }
            ch.pipeline().addLast(PipelineNames.HTTP,
                new ProxyHttpCodec(MAX_INITIAL_LINE, MAX_HEADER_SIZE, 8192,
                runtime.timeouts().requestHead()));
            ch.pipeline().addLast(PipelineNames.AUTH,
                new org.egressproxy.http.ProxyAuthHandler(runtime));
            ch.pipeline().addLast(PipelineNames.PROXY, new HttpProxyHandler(runtime));
            ch.pipeline().addLast(PipelineNames.FORWARD,
                new HttpForwarder(runtime, HttpForwarder.Mode.ABSOLUTE_FORM, 0));
          }
          case HTTP_HOST -> {
            ch.pipeline().addLast(PipelineNames.HTTP,
                new ProxyHttpCodec(MAX_INITIAL_LINE, MAX_HEADER_SIZE, 8192,
                runtime.timeouts().requestHead()));
            ch.pipeline().addLast(PipelineNames.FORWARD,
                new HttpForwarder(runtime, HttpForwarder.Mode.HOST_HEADER, l.upstreamPort()));
          }
          case TLS_SNI -> ch.pipeline().addLast(PipelineNames.SNI,
              new TlsSniHandler(runtime, l.upstreamPort()));
          default -> throw new IllegalStateException("unknown mode " + l.mode());
        }
      }
    };
  }

  /**
   * Closes the listening sockets: new connections are refused, open ones go on - and are told
   * ({@link Drain}), so that idle HTTP keep-alive connections close now instead of holding the
   * drain to its end.
   */
  public void stopAccepting() {
    listening.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
    for (Channel ch : clients) {
      ch.eventLoop().execute(() -> ch.pipeline().fireUserEventTriggered(Drain.INSTANCE));
    }
  }

  /**
   * Waits until every client connection has ended or {@code max} has passed.
   *
   * @return the connections still open
   */
  public int awaitDrained(java.time.Duration max, java.util.function.BooleanSupplier abort)
      throws InterruptedException {
    long deadline = System.nanoTime() + max.toNanos();
    while (!clients.isEmpty() && System.nanoTime() < deadline && !abort.getAsBoolean()) {
      Thread.sleep(50);
    }
    return clients.size();
  }

  /** Stops accepting, closes every connection, releases the event loops. */
  @Override
  public void close() {
    listening.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
    clients.close().awaitUninterruptibly(5, TimeUnit.SECONDS);
    runtime.connector().close();
    workers.shutdownGracefully(0, 2, TimeUnit.SECONDS).awaitUninterruptibly(5, TimeUnit.SECONDS);
  }
}
