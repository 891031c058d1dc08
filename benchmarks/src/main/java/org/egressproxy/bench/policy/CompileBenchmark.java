package org.egressproxy.bench.policy;

import java.util.concurrent.TimeUnit;
import org.egressproxy.config.Config;
import org.egressproxy.policy.CompiledPolicy;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Compiling a policy of 1M rules (patterns parsed, trie built and frozen) within a 512 MB heap:
 * one compilation per iteration. The rules (configuration objects) are built once, outside the
 * timing, and stay on the heap during it, as they would in the proxy.
 *
 * <pre>
 * java -jar benchmarks/target/benchmarks.jar CompileBenchmark
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xms512m", "-Xmx512m"})
@Warmup(iterations = 1)
@Measurement(iterations = 3)
public class CompileBenchmark {
  @Param({"1000000"})
  int rules;

  private Config config;

  @Setup
  public void setUp() {
    config = RuleSets.config(rules);
  }

  @Benchmark
  public CompiledPolicy compile() {
    return RuleSets.compile(config);
  }
}
