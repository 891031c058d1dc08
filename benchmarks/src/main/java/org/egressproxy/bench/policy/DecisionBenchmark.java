package org.egressproxy.bench.policy;

import org.egressproxy.bench.BenchmarkBase;
import org.egressproxy.match.Protocol;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.Decider;
import org.egressproxy.policy.Decision;
import org.egressproxy.policy.Destination;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Decision latency by rule-set size: the compiled trie uncached, and behind the Caffeine cache
 * (every query a hit). Queries are precomputed 5-label names, half matching, drawn from the rules
 * with a Zipfian distribution (house style, and how egress traffic looks) or uniformly (every
 * query lands on a cold part of the trie: the worst case), taken round-robin ({@code i++ &
 * MASK}) so the timed path allocates nothing of ours. Run with {@link RegexListBaselineBenchmark} for the baseline:
 *
 * <pre>
 * java -jar benchmarks/target/benchmarks.jar 'DecisionBenchmark|RegexListBaselineBenchmark' -prof gc
 * </pre>
 */
@State(Scope.Thread)
public class DecisionBenchmark extends BenchmarkBase {
  static final int QUERIES = 1 << 12;
  static final int MASK = QUERIES - 1;

  @Param({"100", "10000", "1000000"})
  int rules;

  /** zipf: a few names take most queries (real egress); uniform: every query cold (worst case). */
  @Param({"zipf", "uniform"})
  String distribution;

  private CompiledPolicy policy;
  private Decider decider;
  private Destination[] destinations;
  private int i;

  @Setup(Level.Trial)
  public void setUp() {
    policy = RuleSets.compile(RuleSets.config(rules));
    String[] names = RuleSets.queries(rules, QUERIES, 42, distribution.equals("zipf"));
    destinations = new Destination[QUERIES];
    for (int k = 0; k < QUERIES; k++) {
      destinations[k] = Destination.of(names[k], 443, Protocol.TLS);
    }
    decider = new Decider(policy, QUERIES * 2);
    for (Destination d : destinations) {
      decider.decide(d); // warm the cache: the cached benchmark measures hits only
    }
  }

  @Benchmark
  public Decision trieUncached() {
    return policy.decide(destinations[i++ & MASK]);
  }

  @Benchmark
  public Decision cacheHit() {
    return decider.decide(destinations[i++ & MASK]);
  }
}
