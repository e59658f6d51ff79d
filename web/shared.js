// What both views of the page share (imported by app.js, console.js and inspector.js, and so
// fetched once): the server's topic rule, the hub's JSON error text, and event-stream frames
// read from a fetch() body.

// The server's topic rule: 1 to 128 bytes, segments of [A-Za-z0-9_.:-] joined by '/'.
const TOPIC_RE = /^[A-Za-z0-9_.:-]+(\/[A-Za-z0-9_.:-]+)*$/;

export function topicProblem(topic) {
  if (topic === '') return 'Enter a topic, for example default.';
  if (topic.length > 128 || !TOPIC_RE.test(topic)) {
    return 'Invalid topic "' + topic + '": use 1 to 128 characters of A-Z a-z 0-9 _ . : - ' +
      'in parts separated by "/".';
  }
  return '';
}

// The server's JSON error text, or the status when the body has none.
export function failure(response) {
  return response.text().then(function (text) {
    var reason = '';
    try {
      var body = JSON.parse(text);
      if (body && typeof body.error === 'string') reason = body.error;
    } catch (err) {
      reason = '';
    }
    var error = new Error((reason || response.statusText || 'error') + ' (HTTP ' + response.status + ')');
    error.status = response.status;
    return error;
  }, function () {
    return new Error('HTTP ' + response.status);
  });
}

// Reads an event-stream response body, calling onFrame(text) with each frame's exact text,
// its terminating blank line included. Resolves when the body ends.
export function readFrames(response, onFrame) {
  var reader = response.body.getReader();
  var decoder = new TextDecoder('utf-8');
  var buffer = '';
  function split() {
    for (;;) {
      var lf = buffer.indexOf('\n\n');
      var crlf = buffer.indexOf('\r\n\r\n');
      var at = lf;
      var size = 2;
      if (crlf >= 0 && (lf < 0 || crlf < lf)) {
        at = crlf;
        size = 4;
      }
      if (at < 0) return;
      var frame = buffer.slice(0, at + size);
      buffer = buffer.slice(at + size);
      onFrame(frame);
    }
  }
  function pump() {
    return reader.read().then(function (chunk) {
      if (chunk.done) {
        buffer += decoder.decode();
        split();
        return;
      }
      buffer += decoder.decode(chunk.value, { stream: true });
      split();
      return pump();
    });
  }
  return pump();
}

// The fields of one frame, by the event-stream rules (enough for this page's own use).
export function parseFrame(frame) {
  var event = { event: 'message', data: [], id: null, comment: false };
  var lines = frame.split(/\r\n|\r|\n/);
  var fields = 0;
  lines.forEach(function (line) {
    if (line === '') return;
    if (line.charAt(0) === ':') {
      event.comment = true;
      return;
    }
    fields += 1;
    var colon = line.indexOf(':');
    var name = colon < 0 ? line : line.slice(0, colon);
    var value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (name === 'event') event.event = value;
    else if (name === 'data') event.data.push(value);
    else if (name === 'id') event.id = value;
    else if (name === 'retry') event.retry = value;
  });
  event.comment = event.comment && fields === 0;
  event.data = event.data.join('\n');
  return event;
}
