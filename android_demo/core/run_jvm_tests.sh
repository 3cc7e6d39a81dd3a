#!/usr/bin/env bash
# Compile the pure-Kotlin core and its JUnit 4 tests with kotlinc and run them on the JVM, no Gradle.
# Needs kotlinc (Debian: apt-get install kotlin; any newer Kotlin works too), a JUnit 4 jar and
# hamcrest (Debian: apt-get install junit4 libhamcrest-java). Override with KOTLINC, JUNIT_JAR,
# HAMCREST_JAR, KOTLIN_STDLIB. Reads the golden vectors in ../../demo_golden (or -Dvitedge.golden).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
golden="${VITEDGE_GOLDEN:-$(cd "$here/../.." && pwd)/demo_golden}"
build="${BUILD_DIR:-$here/build/jvm-tests}"

first() { for f in "$@"; do [ -f "$f" ] && { echo "$f"; return 0; }; done; return 1; }
KOTLINC="${KOTLINC:-$(command -v kotlinc || true)}"
JUNIT_JAR="${JUNIT_JAR:-$(first /usr/share/java/junit4.jar /usr/share/java/junit.jar || true)}"
HAMCREST_JAR="${HAMCREST_JAR:-$(first /usr/share/java/hamcrest-core.jar /usr/share/java/hamcrest.jar || true)}"
[ -n "$KOTLINC" ] || { echo "kotlinc not found (apt-get install kotlin, or set KOTLINC)" >&2; exit 3; }
[ -n "$JUNIT_JAR" ] || { echo "JUnit 4 jar not found (apt-get install junit4, or set JUNIT_JAR)" >&2; exit 3; }
[ -n "$HAMCREST_JAR" ] || { echo "hamcrest jar not found (apt-get install libhamcrest-java, or set HAMCREST_JAR)" >&2; exit 3; }
KOTLIN_STDLIB="${KOTLIN_STDLIB:-$(first "$(dirname "$(readlink -f "$KOTLINC")")/../lib/kotlin-stdlib.jar" /usr/share/java/kotlin-stdlib.jar || true)}"
[ -n "$KOTLIN_STDLIB" ] || { echo "kotlin-stdlib.jar not found next to kotlinc (set KOTLIN_STDLIB)" >&2; exit 3; }

mapfile -t sources < <(find "$here/src/main/kotlin" "$here/src/test/kotlin" -name '*.kt' | sort)
# Recompile only when a source (or the compiler) changed: kotlinc takes tens of seconds to start.
stamp="$( (echo "$KOTLINC"; cat "${sources[@]}") | sha256sum | cut -c1-64)"
if [ "$(cat "$build/stamp" 2>/dev/null || true)" != "$stamp" ]; then
    rm -rf "$build" && mkdir -p "$build/classes"
    echo "kotlinc: $("$KOTLINC" -version 2>&1 | grep -i kotlin | head -1)"
    # -jvm-target 1.8: Android's bytecode level; the JDK running it may be newer.
    "$KOTLINC" -nowarn -jvm-target 1.8 -cp "$JUNIT_JAR:$HAMCREST_JAR" -d "$build/classes" "${sources[@]}" 2>&1 \
        | grep -v -E 'Options -Xverify:none and -noverify were deprecated' || true
    [ -f "$build/classes/dev/vitedge/core/Preprocessor.class" ] || { echo "compilation failed" >&2; exit 1; }
    echo "$stamp" > "$build/stamp"
fi
# Test classes: every top-level `class` in a test file that has @Test methods.
mapfile -t tests < <(cd "$here/src/test/kotlin" && for f in $(grep -l '@Test' -r . | sort); do
    package="$(sed -n 's/^package \([A-Za-z0-9_.]*\).*/\1/p' "$f" | head -1)"
    sed -n 's/^class \([A-Za-z0-9_]*\).*/\1/p' "$f" | sed "s/^/$package./"
done)
# VITEDGE_SELFCHECK_ARTIFACTS: converted artifact folders (':'-separated) whose self-checks the JVM tests also run.
exec java -Dvitedge.golden="$golden" -Dvitedge.selfcheck.artifacts="${VITEDGE_SELFCHECK_ARTIFACTS:-}" -cp "$build/classes:$KOTLIN_STDLIB:$JUNIT_JAR:$HAMCREST_JAR" org.junit.runner.JUnitCore "${tests[@]}"
