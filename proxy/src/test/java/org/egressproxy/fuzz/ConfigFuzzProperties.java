package org.egressproxy.fuzz;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AddLifecycleHook;
import org.egressproxy.catalog.CatalogSet;
import org.egressproxy.config.Config;
import org.egressproxy.config.ConfigException;
import org.egressproxy.config.ConfigLoader;
import org.egressproxy.config.Problems;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.PolicyCompiler;

/**
 * Fuzzing the configuration loader with mutated YAML: the repository's example, the test
 * fixtures and the golden configurations, edited line by line (dropped, doubled, swapped,
 * re-indented, a token replaced) and byte by byte. Whatever the text, loading it either gives a
 * configuration and a compiled policy, or problems that are errors with the file and a line, as
 * a {@link ConfigException} prints them - never another exception.
 */
@AddLifecycleHook(FuzzScale.class)
class ConfigFuzzProperties {
  private static final Path REPO = Path.of(System.getProperty("egress.repoRoot", ".."));
  private static final List<String> SEEDS = seeds();
  /** The bundled catalogs, read once: they are not what is fuzzed here. */
  private static final CatalogSet CATALOGS = CatalogSet.load(List.of(), new Problems());
  private static final List<String> TOKENS = List.of("", " ", "- ", ":", "{", "}", "[", "]",
      "\"", "'", "*", "*.", "&a", "*a", "!!str", "!!binary", "~", "null", "true", "0", "-1",
      "65536", "1e9", "0x10", "10.0.0.0/8", "::/0", "[::1]:53", "500ms", "0s", "{location}",
      "allow", "deny", "ports", "listeners", "policy", "rules", "mode", "\t", "#", "%", "@",
      "\u0000", "\uFEFF", "é", "xn--", "<<", "? ", "|", ">");

  private static List<String> seeds() {
    List<String> out = new ArrayList<>();
    try {
      out.add(Files.readString(REPO.resolve("config/proxy.yaml")));
      for (String dir : List.of("proxy/src/test/resources/config-errors",
          "proxy/src/test/resources/golden")) {
        try (Stream<Path> files = Files.list(REPO.resolve(dir))) {
          for (Path f : files.filter(f -> f.toString().endsWith(".yaml")).sorted().toList()) {
            out.add(Files.readString(f, StandardCharsets.UTF_8));
          }
        }
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    return List.copyOf(out);
  }

  /** A line-level edit. */
  record LineEdit(int op, double at, double other, String token) {
    List<String> apply(List<String> lines) {
      if (lines.isEmpty()) {
        return lines;
      }
      List<String> l = new ArrayList<>(lines);
      int i = Math.min(l.size() - 1, (int) (at * l.size()));
      int j = Math.min(l.size() - 1, (int) (other * l.size()));
      String line = l.get(i);
      switch (op) {
        case 0 -> l.remove(i);
        case 1 -> l.add(i, line);
        case 2 -> {
          l.set(i, l.get(j));
          l.set(j, line);
        }
        case 3 -> l.set(i, "  " + line);
        case 4 -> l.set(i, line.stripLeading());
        default -> {
          // Replace a token: the text after the colon, or a random span.
          int colon = line.indexOf(':');
          int from = colon >= 0 ? colon + 1 : (int) (other * line.length());
          l.set(i, line.substring(0, Math.min(from, line.length())) + " " + token);
        }
      }
      return l;
    }
  }

  @Provide
  Arbitrary<String> mutatedYaml() {
    Arbitrary<LineEdit> edit = Combinators.combine(Arbitraries.integers().between(0, 6),
            Arbitraries.doubles().between(0, 1), Arbitraries.doubles().between(0, 1),
            Arbitraries.of(TOKENS))
        .as(LineEdit::new);
    Arbitrary<List<Mutation>> bytes = Mutation.arbitrary().list().ofMaxSize(2);
    return Combinators.combine(Arbitraries.of(SEEDS), edit.list().ofMinSize(1).ofMaxSize(4),
            bytes)
        .as((seed, edits, mutations) -> {
          List<String> lines = List.of(seed.split("\n", -1));
          for (LineEdit e : edits) {
            lines = e.apply(lines);
          }
          byte[] b = String.join("\n", lines).getBytes(StandardCharsets.UTF_8);
          for (Mutation m : mutations) {
            b = m.apply(b);
          }
          return new String(b, StandardCharsets.UTF_8);
        });
  }

  @Property(tries = 5_000)
  void aConfigOrErrorsWithTheirLinesNeverAnotherException(@ForAll("mutatedYaml") String yaml) {
    Problems problems = new Problems();
    Config config = ConfigLoader.read("fuzz.yaml", new StringReader(yaml), problems);
    CompiledPolicy policy = null;
    if (config != null) {
      policy = new PolicyCompiler().compile(config, CATALOGS, problems);
    }
    if (config != null && policy != null && !problems.hasErrors()) {
      return; // a usable configuration
    }
    ConfigException e = new ConfigException(problems);
    assertThat(e.errors()).as("a refused configuration says why").isNotEmpty();
    for (Problems.Problem p : e.errors()) {
      assertThat(p.where().file()).isEqualTo("fuzz.yaml");
      assertThat(p.where().line()).as("a line for: %s", p.message()).isPositive();
    }
    assertThat(e.getMessage().split("\n"))
        .allSatisfy(line -> assertThat(line).matches("(?s)fuzz\\.yaml:[1-9][0-9]*: .+"));
  }
}
