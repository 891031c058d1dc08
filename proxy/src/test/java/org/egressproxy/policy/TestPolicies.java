package org.egressproxy.policy;

import java.io.StringReader;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Path;
import org.egressproxy.catalog.CatalogSet;
import org.egressproxy.config.Config;
import org.egressproxy.config.ConfigException;
import org.egressproxy.config.ConfigLoader;
import org.egressproxy.config.Problems;

/** Compiles test configurations: from YAML text, a test resource, or a single catalog. */
final class TestPolicies {
  private TestPolicies() {}

  static CompiledPolicy fromYaml(String name, String yaml) throws ConfigException {
    Problems problems = new Problems();
    Config config = ConfigLoader.read(name, new StringReader(yaml), problems);
    if (config == null || problems.hasErrors()) {
      throw new ConfigException(problems);
    }
    CatalogSet catalogs = CatalogSet.load(config.policy().catalogDirs(), problems);
    CompiledPolicy p = new PolicyCompiler().compile(config, catalogs, problems);
    if (p == null) {
      throw new ConfigException(problems);
    }
    return p;
  }

  /** The top-level policy and each of {@code policy.sources}. */
  static Sources sourcesFromYaml(String name, String yaml) throws ConfigException {
    Problems problems = new Problems();
    Config config = ConfigLoader.read(name, new StringReader(yaml), problems);
    if (config == null || problems.hasErrors()) {
      throw new ConfigException(problems);
    }
    Sources s = new PolicyCompiler().compileSources(config,
        CatalogSet.load(config.policy().catalogDirs(), problems), problems);
    if (s == null) {
      throw new ConfigException(problems);
    }
    return s;
  }

  static CompiledPolicy onlyCatalog(String catalog) throws ConfigException {
    return fromYaml("catalog:" + catalog, "variables:\n  location: eastus\n"
        + "  universeDomain: universe.example.local\npolicy:\n  catalogs: [" + catalog + "]\n");
  }

  static Path resource(String name) {
    URL url = TestPolicies.class.getClassLoader().getResource(name);
    if (url == null) {
      throw new IllegalArgumentException("no test resource " + name);
    }
    try {
      return Path.of(url.toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  static CompiledPolicy fromResource(String name) throws ConfigException {
    return PolicyLoader.load(resource(name)).policy();
  }
}
