package org.egressproxy.catalog;

import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystem;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.egressproxy.config.Config.CatalogDir;
import org.egressproxy.config.Problems;
import org.egressproxy.config.SourceRef;

/**
 * The catalogs available to a configuration: those bundled in the jar, and every {@code *.yaml}
 * in the configured catalog directories. A directory's catalog replaces a bundled one of the same
 * name, so operators can update a catalog without a new release.
 */
public final class CatalogSet {
  /** Where the bundled catalogs sit on the class path. */
  public static final String RESOURCE_DIR = "catalog";

  private final Map<String, Catalog> byName;

  private CatalogSet(Map<String, Catalog> byName) {
    this.byName = Collections.unmodifiableMap(byName);
  }

  public Catalog get(String name) {
    return byName.get(name);
  }

  /** All catalogs, by name. */
  public Collection<Catalog> all() {
    return byName.values();
  }

  public List<String> names() {
    return List.copyOf(byName.keySet());
  }

  /** The bundled catalogs plus those in {@code dirs}; problems go to {@code problems}. */
  public static CatalogSet load(List<CatalogDir> dirs, Problems problems) {
    Map<String, Catalog> map = new TreeMap<>();
    for (Catalog c : builtin(problems)) {
      map.put(c.name(), c);
    }
    Map<String, Catalog> fromDirs = new TreeMap<>();
    for (CatalogDir dir : dirs) {
      if (!Files.isDirectory(dir.path())) {
        problems.error(dir.at(), "catalog directory '" + dir.path() + "' does not exist (resolved"
            + " against the working directory: " + dir.path().toAbsolutePath().normalize() + ")");
        continue;
      }
      List<Path> files = new ArrayList<>();
      try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir.path(), "*.yaml")) {
        ds.forEach(files::add);
      } catch (IOException e) {
        problems.error(dir.at(), "cannot list catalog directory '" + dir.path() + "': " + e);
        continue;
      }
      Collections.sort(files);
      for (Path f : files) {
        Catalog c = readFile(f, problems);
        if (c == null) {
          continue;
        }
        String expected = f.getFileName().toString().replaceFirst("\\.yaml$", "");
        if (!c.name().equals(expected)) {
          problems.error(c.at(), "catalog '" + c.name() + "' must be in a file named "
              + c.name() + ".yaml (or be renamed '" + expected + "')");
          continue;
        }
        Catalog other = fromDirs.putIfAbsent(c.name(), c);
        if (other != null) {
          problems.error(c.at(), "catalog '" + c.name() + "' is also defined in "
              + other.origin());
          continue;
        }
        map.put(c.name(), c);
      }
    }
    return new CatalogSet(map);
  }

  private static Catalog readFile(Path f, Problems problems) {
    try (Reader r = Files.newBufferedReader(f, StandardCharsets.UTF_8)) {
      return CatalogLoader.read(f.toString(), f.toString(), r, problems);
    } catch (IOException e) {
      problems.error(new SourceRef(f.toString(), 0), "cannot read: " + e.getMessage());
      return null;
    }
  }

  /** The catalogs bundled on the class path under {@value #RESOURCE_DIR}/. */
  public static List<Catalog> builtin(Problems problems) {
    List<Catalog> out = new ArrayList<>();
    for (String file : builtinFiles()) {
      String resource = RESOURCE_DIR + "/" + file;
      try (InputStream in = CatalogSet.class.getClassLoader().getResourceAsStream(resource)) {
        if (in == null) {
          continue;
        }
        Catalog c = CatalogLoader.read(resource + " (built in)", Catalog.BUILTIN,
            new InputStreamReader(in, StandardCharsets.UTF_8), problems);
        if (c != null) {
          out.add(c);
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return out;
  }

  /** File names under the bundled catalog directory, from the jar or the classes directory. */
  static List<String> builtinFiles() {
    Path location;
    try {
      location = Path.of(CatalogSet.class.getProtectionDomain().getCodeSource().getLocation()
          .toURI());
    } catch (URISyntaxException | SecurityException | NullPointerException e) {
      throw new IllegalStateException("cannot locate the bundled catalogs", e);
    }
    try {
      if (Files.isDirectory(location)) {
        return list(location.resolve(RESOURCE_DIR));
      }
      try (FileSystem jar = FileSystems.newFileSystem(location, (ClassLoader) null)) {
        return list(jar.getPath(RESOURCE_DIR));
      }
    } catch (IOException e) {
      throw new UncheckedIOException("cannot list the bundled catalogs in " + location, e);
    }
  }

  private static List<String> list(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return List.of();
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".yaml")).sorted()
          .toList();
    }
  }
}
