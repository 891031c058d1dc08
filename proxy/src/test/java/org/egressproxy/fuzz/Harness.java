package org.egressproxy.fuzz;

import io.micrometer.core.instrument.Counter;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.embedded.EmbeddedChannel;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.egressproxy.catalog.CatalogSet;
import org.egressproxy.config.Config;
import org.egressproxy.config.ConfigLoader;
import org.egressproxy.config.Problems;
import org.egressproxy.http.HttpForwarder;
import org.egressproxy.http.HttpProxyHandler;
import org.egressproxy.http.ProxyHttpCodec;
import org.egressproxy.log.Connection;
import org.egressproxy.log.DecisionLog;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.ConnectionLimits;
import org.egressproxy.net.ProxyRuntime;
import org.egressproxy.net.ProxyServer;
import org.egressproxy.net.Transport;
import org.egressproxy.policy.Decider;
import org.egressproxy.policy.PolicyCompiler;
import org.egressproxy.tunnel.LoopGuard;
import org.egressproxy.tunnel.TlsSniHandler;
import org.egressproxy.tunnel.UpstreamConnector;

/**
 * The proxy's real client-side handlers on an {@link EmbeddedChannel}, for fuzzing: the HTTP
 * codec with the CONNECT and forwarding handlers, or the tls-sni handler, deciding with a real
 * policy. The one allowed name, {@code www.allowed.test}, is pinned to a private address, so an
 * input the proxy would forward ends at the private-address check - counted as a {@code
 * private-destination} decision - without a socket: that count is how a fuzz property sees that
 * a byte would have gone upstream.
 */
final class Harness {
  static final String ALLOWED = "www.allowed.test";
  private static final String YAML = """
      policy:
        rules:
          - {allow: www.allowed.test, ports: [80, 443]}
          - deny: blocked.allowed.test
      resolver:
        hosts:
          www.allowed.test: 10.9.9.9
          blocked.allowed.test: 10.9.9.9
      """;

  final ProxyRuntime runtime;
  final ProxyMetrics metrics;

  Harness() {
    Problems problems = new Problems();
    Config config = ConfigLoader.read("fuzz.yaml", new StringReader(YAML), problems);
    Decider decider = new Decider(new PolicyCompiler().compile(config,
        CatalogSet.load(List.of(), problems), problems), 1000);
    if (problems.hasErrors()) {
      throw new IllegalStateException(problems.all().toString());
    }
    metrics = new ProxyMetrics();
    runtime = new ProxyRuntime(decider,
        new UpstreamConnector(Transport.select(), config, metrics, new LoopGuard()),
        DecisionLog.disabled(), metrics, config.timeouts(), config.tunnel(),
        new ConnectionLimits(config.limits()));
  }

  /** What the ConnectionTracker does first: the connection's record. */
  private static ChannelHandler record(String listener) {
    return new ChannelInboundHandlerAdapter() {
      @Override
      public void handlerAdded(ChannelHandlerContext ctx) {
        ctx.channel().attr(ProxyRuntime.CONNECTION).set(new Connection(listener,
            "127.0.0.1:40000"));
      }
    };
  }

  /** The http-proxy pipeline ({@code absoluteForm}) or the http-host one. */
  EmbeddedChannel http(boolean absoluteForm) {
    ProxyHttpCodec codec = new ProxyHttpCodec(ProxyServer.MAX_INITIAL_LINE,
        ProxyServer.MAX_HEADER_SIZE, 8192, Duration.ofSeconds(10));
    return absoluteForm
        ? new EmbeddedChannel(record("explicit"), codec, new HttpProxyHandler(runtime),
            new HttpForwarder(runtime, HttpForwarder.Mode.ABSOLUTE_FORM, 0))
        : new EmbeddedChannel(record("http"), codec,
            new HttpForwarder(runtime, HttpForwarder.Mode.HOST_HEADER, 80));
  }

  EmbeddedChannel tls() {
    return new EmbeddedChannel(record("tls"), new TlsSniHandler(runtime, 443));
  }

  private static final java.util.regex.Pattern STATUS =
      java.util.regex.Pattern.compile("(?m)^HTTP/1\\.1 (\\d{3}) ");

  /** What one input did. */
  record Outcome(byte[] written, boolean closed, Map<String, Long> reasons) {
    String text() {
      return new String(written, StandardCharsets.ISO_8859_1);
    }

    /** The status codes of the responses written, in order. */
    List<Integer> statuses() {
      List<Integer> out = new ArrayList<>();
      java.util.regex.Matcher m = STATUS.matcher(text());
      while (m.find()) {
        out.add(Integer.parseInt(m.group(1)));
      }
      return out;
    }

    long count(String reason) {
      return reasons.getOrDefault(reason, 0L);
    }
  }

  /**
   * Feeds {@code chunks} to {@code ch}, collects what it wrote, closes it, and checks that the
   * input buffers and every buffer the handlers allocated were released, and that nothing
   * reached the end of the pipeline.
   */
  Outcome run(EmbeddedChannel ch, List<byte[]> chunks) {
    TrackingAllocator alloc = new TrackingAllocator();
    ch.config().setAllocator(alloc);
    Map<String, Long> before = reasons();
    List<ByteBuf> inputs = new ArrayList<>();
    java.io.ByteArrayOutputStream written = new java.io.ByteArrayOutputStream();
    for (byte[] c : chunks) {
      if (!ch.isActive()) {
        break;
      }
      if (c.length == 0) {
        continue; // an empty read never happens
      }
      ByteBuf b = Unpooled.wrappedBuffer(c);
      inputs.add(b);
      ch.writeInbound(b);
      ch.runPendingTasks();
      drain(ch, written);
    }
    boolean closed = !ch.isActive();
    ch.checkException(); // an exception that reached the pipeline's tail
    Object leftover = ch.readInbound();
    if (leftover != null) {
      io.netty.util.ReferenceCountUtil.release(leftover);
      throw new AssertionError("a message reached the end of the pipeline: " + leftover);
    }
    ch.finishAndReleaseAll();
    drain(ch, written);
    for (ByteBuf b : inputs) {
      if (b.refCnt() != 0) {
        throw new AssertionError("an input buffer was not released (refCnt " + b.refCnt() + ")");
      }
    }
    if (!alloc.unreleased().isEmpty()) {
      throw new AssertionError("buffers allocated and never released: " + alloc.unreleased());
    }
    Map<String, Long> after = reasons();
    Map<String, Long> delta = new HashMap<>();
    after.forEach((k, v) -> {
      long d = v - before.getOrDefault(k, 0L);
      if (d != 0) {
        delta.put(k, d);
      }
    });
    return new Outcome(written.toByteArray(), closed, delta);
  }

  private static void drain(EmbeddedChannel ch, java.io.ByteArrayOutputStream to) {
    Object o;
    while ((o = ch.readOutbound()) != null) {
      if (o instanceof ByteBuf b) {
        byte[] bytes = new byte[b.readableBytes()];
        b.readBytes(bytes);
        to.writeBytes(bytes);
      }
      io.netty.util.ReferenceCountUtil.release(o);
    }
  }

  /** Decisions so far by reason (a deny's reason, or "allow"). */
  Map<String, Long> reasons() {
    Map<String, Long> out = new HashMap<>();
    for (Counter c : metrics.registry().find("egress.decisions").counters()) {
      String key = "allow".equals(c.getId().getTag("decision")) ? "allow"
          : c.getId().getTag("reason");
      out.merge(key, (long) c.count(), Long::sum);
    }
    return out;
  }
}
