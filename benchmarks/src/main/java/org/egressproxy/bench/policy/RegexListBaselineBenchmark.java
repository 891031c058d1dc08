package org.egressproxy.bench.policy;

import java.util.List;
import java.util.regex.Pattern;
import org.egressproxy.bench.BenchmarkBase;
import org.egressproxy.config.Config.LocalRule;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * The baseline {@link DecisionBenchmark} is compared with: one compiled regex per rule, scanned
 * in order (the first deny wins, else any allow), as naive egress filters do. Same rules, same
 * queries. Not run at 1M rules: a million regexes per query take seconds per operation.
 *
 * <pre>
 * java -jar benchmarks/target/benchmarks.jar 'DecisionBenchmark|RegexListBaselineBenchmark' -prof gc
 * </pre>
 */
@State(Scope.Thread)
public class RegexListBaselineBenchmark extends BenchmarkBase {
  @Param({"100", "10000"})
  int rules;

  private Pattern[] regexes;
  private boolean[] deny;
  private String[] hosts;
  private int i;

  @Setup(Level.Trial)
  public void setUp() {
    List<LocalRule> list = RuleSets.rules(rules);
    regexes = new Pattern[list.size()];
    deny = new boolean[list.size()];
    for (int k = 0; k < list.size(); k++) {
      String p = list.get(k).pattern();
      String regex = p.startsWith("*.")
          ? "(?:[a-z0-9_-]+\\.)+" + Pattern.quote(p.substring(2))
          : Pattern.quote(p);
      regexes[k] = Pattern.compile(regex, Pattern.CASE_INSENSITIVE);
      deny[k] = list.get(k).deny();
    }
    hosts = RuleSets.queries(rules, DecisionBenchmark.QUERIES, 42);
  }

  @Benchmark
  public int regexList() {
    String host = hosts[i++ & DecisionBenchmark.MASK];
    int result = 0;
    for (int k = 0; k < regexes.length; k++) {
      if (regexes[k].matcher(host).matches()) {
        if (deny[k]) {
          return 2;
        }
        result = 1;
      }
    }
    return result;
  }
}
