package org.egressproxy.bench.peek;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import java.util.Arrays;
import java.util.List;
import org.egressproxy.bench.BenchmarkBase;
import org.egressproxy.config.Config;
import org.egressproxy.it.ClientHellos;
import org.egressproxy.log.Connection;
import org.egressproxy.net.ProxyRuntime;
import org.egressproxy.peek.ClientHello;
import org.egressproxy.tunnel.TunnelSniCheck;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Reading a TLS ClientHello, in three shapes built by the test tree's {@link ClientHellos}: {@code
 * small} (SNI, ALPN {@code h2, http/1.1}, an X25519 key share: ~180 bytes, as curl without
 * post-quantum groups), {@code pq} (the same with a 1,216-byte X25519MLKEM768 key share and an
 * ECH extension: ~1.4 KB, as current browsers) and {@code pq-3-records} (the {@code pq} message
 * cut into three TLS records and delivered in two reads that split a record).
 *
 * <ul>
 *   <li>{@code parse}: the pure parser, {@link ClientHello#parse}, on the handshake body;
 *   <li>{@code sniCheck}: the handler that peeks at a CONNECT tunnel's first bytes, {@link
 *       TunnelSniCheck} (Netty's record framing and reassembly, then the parser, then the SNI
 *       compared with the CONNECT host and the handler removing itself), on an {@code
 *       EmbeddedChannel}: one new handler per operation, as one per tunnel. Each read is a pooled
 *       buffer filled from the precomputed bytes, as the transport fills one from the socket; the
 *       ClientHello the handler passes on is released at the end of the pipeline. The
 *       {@code tls-sni} listener's {@code TlsSniHandler} runs the same framing and parser, then
 *       a decision and an upstream connect, which this benchmark leaves out.
 * </ul>
 *
 * <pre>
 * java -jar benchmarks/target/benchmarks.jar ClientHelloBenchmark -prof gc
 * </pre>
 */
public class ClientHelloBenchmark extends BenchmarkBase {
  static final String HOST = "api.allowed.test";

  /** The handshake message (type, length, body) of each shape. */
  static byte[] handshake(String shape) {
    return switch (shape) {
      case "small" -> ClientHellos.handshake(HOST, List.of("h2", "http/1.1"), 32, false);
      case "pq", "pq-3-records" ->
          ClientHellos.handshake(HOST, List.of("h2", "http/1.1"), 1216, true);
      default -> throw new IllegalArgumentException(shape);
    };
  }

  /** The pure parser's input: the handshake body after its 4-byte header. */
  @State(Scope.Thread)
  public static class Body {
    @Param({"small", "pq"})
    String shape;

    ByteBuf body;

    @Setup(Level.Trial)
    public void setUp() {
      byte[] hs = handshake(shape);
      body = Unpooled.wrappedBuffer(Arrays.copyOfRange(hs, 4, hs.length));
    }
  }

  /** The records as they arrive, split into reads, and a channel with a CONNECT's record. */
  @State(Scope.Thread)
  public static class Tunnel {
    @Param({"small", "pq", "pq-3-records"})
    String shape;

    byte[][] reads;
    EmbeddedChannel client;
    EmbeddedChannel upstream;
    ProxyRuntime runtime;
    ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;

    @Setup(Level.Trial)
    public void setUp() {
      byte[] hs = handshake(shape);
      if (shape.equals("pq-3-records")) {
        byte[] wire = ClientHellos.records(hs, 3);
        int cut = wire.length / 2; // inside the second record
        reads = new byte[][] {Arrays.copyOf(wire, cut), Arrays.copyOfRange(wire, cut,
            wire.length)};
      } else {
        reads = new byte[][] {ClientHellos.records(hs, 1)};
      }
      runtime = new ProxyRuntime(null, null, null, null, Config.Timeouts.DEFAULTS,
          Config.Tunnel.DEFAULTS, null);
      client = new EmbeddedChannel();
      upstream = new EmbeddedChannel();
      Connection c = new Connection("bench", "127.0.0.1:40000");
      c.method = "CONNECT";
      c.host = HOST;
      c.port = 443;
      client.attr(ProxyRuntime.CONNECTION).set(c);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
      client.finishAndReleaseAll();
      upstream.finishAndReleaseAll();
    }
  }

  @Benchmark
  public ClientHello parse(Body s) throws ClientHello.MalformedException {
    return ClientHello.parse(s.body);
  }

  @Benchmark
  public int sniCheck(Tunnel s) {
    s.client.pipeline().addLast(new TunnelSniCheck(s.runtime, s.upstream));
    for (byte[] read : s.reads) {
      ByteBuf buf = s.alloc.ioBuffer(Math.max(2048, read.length));
      buf.writeBytes(read);
      s.client.pipeline().fireChannelRead(buf);
      s.client.pipeline().fireChannelReadComplete();
    }
    ByteBuf passedOn = (ByteBuf) s.client.inboundMessages().poll();
    if (passedOn == null || s.client.pipeline().last() != null) {
      throw new IllegalStateException("the ClientHello was not passed on");
    }
    int n = passedOn.readableBytes();
    passedOn.release();
    return n;
  }
}
