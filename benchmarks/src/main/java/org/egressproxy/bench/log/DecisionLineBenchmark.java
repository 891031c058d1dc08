package org.egressproxy.bench.log;

import java.time.Clock;
import java.util.List;
import org.egressproxy.bench.BenchmarkBase;
import org.egressproxy.bench.policy.RuleSets;
import org.egressproxy.log.Connection;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.Destination;
import org.egressproxy.match.Protocol;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * One decision-log line as an event loop builds it for each tunnel: the {@code close} event of
 * an allowed CONNECT (rule, upstream, byte counts), stamped with the system clock as the log
 * does. Two such lines per tunnel (decision and close).
 *
 * <pre>
 * java -jar benchmarks/target/benchmarks.jar DecisionLineBenchmark -prof gc
 * </pre>
 */
@State(Scope.Thread)
public class DecisionLineBenchmark extends BenchmarkBase {
  private final Clock clock = Clock.systemUTC();
  private Connection c;

  @Setup(Level.Trial)
  public void setUp() {
    CompiledPolicy policy = RuleSets.compile(RuleSets.config(100));
    String name = RuleSets.queries(100, 1, 7, false)[0];
    c = new Connection("explicit", "10.240.0.17:53124");
    c.method = "CONNECT";
    c.host = name;
    c.port = 443;
    c.sni = name;
    c.alpn = List.of("h2", "http/1.1");
    c.decision = policy.decide(Destination.of(name, 443, Protocol.TLS));
    c.upstream = "20.61.99.12:443";
    c.bytesUp = 1_834;
    c.bytesDown = 48_211;
  }

  @Benchmark
  public String closeLine() {
    return c.toJson("close", clock.instant());
  }
}
