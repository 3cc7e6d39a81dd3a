package dev.vitedge.core

/** Malformed JSON, or JSON of the wrong shape; the message says where. */
class JsonException(message: String) : IllegalArgumentException(message)

/**
 * A small JSON reader (RFC 8259), enough for manifest.json and the golden vectors, with no
 * dependencies (org.json is an Android class; this module runs on any JVM).
 *
 * Objects become [Map] (keys in file order), arrays [List], strings [String], numbers [Double]
 * (parsed by `java.lang.Double.parseDouble`, correctly rounded, so a float written by Python reads
 * back to the same double), `true`/`false` [Boolean], `null` null.
 */
object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        reader.skipSpace()
        val value = reader.value()
        reader.skipSpace()
        if (!reader.atEnd()) reader.fail("unexpected text after the JSON value")
        return value
    }

    private class Reader(private val text: String) {
        private var pos = 0

        fun atEnd(): Boolean = pos >= text.length

        fun fail(what: String): Nothing = throw JsonException("JSON: $what at character $pos")

        fun skipSpace() {
            while (pos < text.length && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\r' || text[pos] == '\t')) pos++
        }

        fun value(): Any? {
            if (atEnd()) fail("unexpected end")
            return when (text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        private fun literal(word: String, result: Any?): Any? {
            if (!text.startsWith(word, pos)) fail("unexpected character '${text[pos]}'")
            pos += word.length
            return result
        }

        private fun obj(): Map<String, Any?> {
            val result = LinkedHashMap<String, Any?>()
            pos++ // {
            skipSpace()
            if (!atEnd() && text[pos] == '}') {
                pos++
                return result
            }
            while (true) {
                skipSpace()
                if (atEnd() || text[pos] != '"') fail("expected a string key")
                val key = string()
                skipSpace()
                if (atEnd() || text[pos] != ':') fail("expected ':'")
                pos++
                skipSpace()
                result[key] = value()
                skipSpace()
                if (atEnd()) fail("unexpected end in an object")
                when (text[pos]) {
                    ',' -> pos++
                    '}' -> { pos++; return result }
                    else -> fail("expected ',' or '}'")
                }
            }
        }

        private fun array(): List<Any?> {
            val result = ArrayList<Any?>()
            pos++ // [
            skipSpace()
            if (!atEnd() && text[pos] == ']') {
                pos++
                return result
            }
            while (true) {
                skipSpace()
                result.add(value())
                skipSpace()
                if (atEnd()) fail("unexpected end in an array")
                when (text[pos]) {
                    ',' -> pos++
                    ']' -> { pos++; return result }
                    else -> fail("expected ',' or ']'")
                }
            }
        }

        private fun string(): String {
            pos++ // opening quote
            val out = StringBuilder()
            while (true) {
                if (atEnd()) fail("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> {
                        if (atEnd()) fail("unterminated escape")
                        when (val e = text[pos++]) {
                            '"' -> out.append('"')
                            '\\' -> out.append('\\')
                            '/' -> out.append('/')
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                if (pos + 4 > text.length) fail("short \\u escape")
                                var code = 0
                                for (i in 0 until 4) {
                                    val digit = Character.digit(text[pos + i], 16)
                                    if (digit < 0) fail("bad \\u escape")
                                    code = code * 16 + digit
                                }
                                pos += 4
                                out.append(code.toChar())
                            }
                            else -> fail("bad escape '\\$e'")
                        }
                    }
                    c < ' ' -> fail("control character in a string")
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Double {
            val start = pos
            if (pos < text.length && text[pos] == '-') pos++
            val digitsStart = pos
            while (pos < text.length && text[pos] in '0'..'9') pos++
            if (pos == digitsStart) fail("unexpected character '${text[start]}'")
            if (text[digitsStart] == '0' && pos - digitsStart > 1) fail("leading zero in a number")
            if (pos < text.length && text[pos] == '.') {
                pos++
                val fraction = pos
                while (pos < text.length && text[pos] in '0'..'9') pos++
                if (pos == fraction) fail("digits expected after '.'")
            }
            if (pos < text.length && (text[pos] == 'e' || text[pos] == 'E')) {
                pos++
                if (pos < text.length && (text[pos] == '+' || text[pos] == '-')) pos++
                val exponent = pos
                while (pos < text.length && text[pos] in '0'..'9') pos++
                if (pos == exponent) fail("digits expected in the exponent")
            }
            return java.lang.Double.parseDouble(text.substring(start, pos))
        }
    }
}

/** Typed access to a parsed JSON object; errors name the field and where it is ([where]). */
class JsonObject(val map: Map<String, Any?>, val where: String) {
    val keys: Set<String> get() = map.keys

    fun has(key: String): Boolean = map.containsKey(key)

    fun isNull(key: String): Boolean = map[key] == null

    private fun wrong(key: String, expected: String): Nothing =
        throw JsonException("$where: '$key' should be $expected, got ${describe(map[key])}")

    private fun present(key: String): Any {
        if (!map.containsKey(key)) throw JsonException("$where: missing '$key'")
        return map[key] ?: wrong(key, "set (not null)")
    }

    fun string(key: String): String = present(key) as? String ?: wrong(key, "a string")

    fun stringOrNull(key: String): String? = if (isNull(key)) null else string(key)

    fun double(key: String): Double = present(key) as? Double ?: wrong(key, "a number")

    fun doubleOrNull(key: String): Double? = if (isNull(key)) null else double(key)

    fun int(key: String): Int = toInt(present(key)) ?: wrong(key, "an integer")

    fun intOrNull(key: String): Int? = if (isNull(key)) null else int(key)

    fun boolean(key: String): Boolean = present(key) as? Boolean ?: wrong(key, "true or false")

    fun booleanOr(key: String, default: Boolean): Boolean = if (isNull(key)) default else boolean(key)

    @Suppress("UNCHECKED_CAST")
    fun obj(key: String): JsonObject = JsonObject(present(key) as? Map<String, Any?> ?: wrong(key, "an object"), "$where.$key")

    fun objOrNull(key: String): JsonObject? = if (isNull(key)) null else obj(key)

    fun list(key: String): List<Any?> = present(key) as? List<Any?> ?: wrong(key, "an array")

    fun listOrNull(key: String): List<Any?>? = if (isNull(key)) null else list(key)

    fun ints(key: String): List<Int?> = list(key).map { if (it == null) null else toInt(it) ?: wrong(key, "an array of integers") }

    fun doubles(key: String): List<Double> = list(key).map { it as? Double ?: wrong(key, "an array of numbers") }

    @Suppress("UNCHECKED_CAST")
    fun objects(key: String): List<JsonObject> = list(key).mapIndexed { i, item ->
        JsonObject(item as? Map<String, Any?> ?: wrong(key, "an array of objects"), "$where.$key[$i]")
    }

    companion object {
        @Suppress("UNCHECKED_CAST")
        fun parse(text: String, where: String): JsonObject {
            val value = try {
                Json.parse(text)
            } catch (error: JsonException) {
                throw JsonException("$where: not valid JSON (${error.message})")
            }
            return JsonObject(value as? Map<String, Any?> ?: throw JsonException("$where: not a JSON object"), where)
        }

        internal fun toInt(value: Any?): Int? {
            val number = value as? Double ?: return null
            if (number != Math.floor(number) || number < Int.MIN_VALUE || number > Int.MAX_VALUE) return null
            return number.toInt()
        }

        private fun describe(value: Any?): String = when (value) {
            null -> "null"
            is String -> "a string"
            is Double -> value.toString()
            is Boolean -> value.toString()
            is List<*> -> "an array"
            else -> "an object"
        }
    }
}
