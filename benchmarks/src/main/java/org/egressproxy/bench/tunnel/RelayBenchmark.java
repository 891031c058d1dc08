package org.egressproxy.bench.tunnel;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import org.egressproxy.bench.BenchmarkBase;
import org.egressproxy.log.Connection;
import org.egressproxy.metrics.ProxyMetrics;
import org.egressproxy.net.PipelineNames;
import org.egressproxy.tunnel.Tunnels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The relay's cost per read: a client channel and an upstream channel joined by {@link
 * Tunnels#join} (the two {@code Relay} handlers with the real Prometheus byte counters), both
 * {@code EmbeddedChannel}s; one operation is one read of {@code size} bytes on the client side,
 * counted, written to the upstream, flushed at read-complete, and taken off the upstream's
 * outbound queue. The read buffer is precomputed and retained for each read (the relay passes
 * the same buffer on; no copy), so the figure is the handler's work and Netty's outbound path,
 * not a memory copy or a system call.
 *
 * <pre>
 * java -jar benchmarks/target/benchmarks.jar RelayBenchmark -prof gc
 * </pre>
 */
@State(Scope.Thread)
public class RelayBenchmark extends BenchmarkBase {
  @Param({"2048", "65536"})
  int size;

  private EmbeddedChannel client;
  private EmbeddedChannel upstream;
  private ByteBuf read;

  @Setup(Level.Trial)
  public void setUp() {
    client = new EmbeddedChannel();
    upstream = new EmbeddedChannel();
    Connection c = new Connection("bench", "127.0.0.1:40000");
    Tunnels.join(client, upstream, c, new ProxyMetrics().bytes("bench", "default"), null, false);
    if (client.pipeline().get(PipelineNames.RELAY) == null) {
      throw new IllegalStateException("no relay");
    }
    read = PooledByteBufAllocator.DEFAULT.ioBuffer(size);
    read.writerIndex(size);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    read.release();
    client.finishAndReleaseAll();
    upstream.finishAndReleaseAll();
  }

  @Benchmark
  public int relayOneRead() {
    client.pipeline().fireChannelRead(read.retain()); // the relay hands it on; released below
    client.pipeline().fireChannelReadComplete();
    ByteBuf out = (ByteBuf) upstream.outboundMessages().poll();
    int n = out.readableBytes();
    out.release();
    return n;
  }
}
