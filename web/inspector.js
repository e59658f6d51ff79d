// The console's inspector: one live stream of a topic, read with fetch() so that each frame is
// shown as the bytes the server sent (EventSource only exposes parsed events). Imported by
// console.js.
//
// createInspector(el, headers) takes the inspector's elements and a function giving the
// stream's request headers (the subscriber token); it returns start(topic), stop(text) and
// topic() (the topic watched, or null).
import * as shared from './shared.js';

export function createInspector(el, headers) {
  var MAX_FRAMES = 100;
  var inspector = null; // { controller, topic }
  var frameCount = 0;
  var follow = true; // the wire pane shows the newest frame
  var encoder = new TextEncoder();
  var iTopic = el.topic;
  var iStop = el.stop;
  var iState = el.state;
  var iError = el.error;
  var framesList = el.frames;
  var framesEmpty = el.framesEmpty;
  var wire = el.wire;
  var wireMeta = el.wireMeta;
  var setPill = el.setPill;

  function stopInspector(text) {
    if (inspector) {
      inspector.controller.abort();
      inspector = null;
    }
    iStop.hidden = true;
    setPill(iState, 'closed', text || 'stopped');
  }

  function describe(event, frame) {
    if (event.comment) return 'comment: ' + frame.replace(/^:\s?/, '').trim();
    if (event.retry !== undefined && event.data === '' && event.id === null) return 'retry ' + event.retry + ' ms';
    return event.event + (event.id ? ' · ' + event.id : '');
  }

  function showFrame(button, frame) {
    var previous = framesList.querySelector('button[aria-current="true"]');
    if (previous) previous.removeAttribute('aria-current');
    button.setAttribute('aria-current', 'true');
    while (wire.firstChild) wire.removeChild(wire.firstChild);
    // Each line's text exactly as received, then its terminator: the copyable text is the
    // frame's bytes; CSS shows the terminator (\n) from data-end.
    var parts = frame.split(/(\r\n|\r|\n)/);
    var lines = 0;
    for (var i = 0; i < parts.length; i += 2) {
      if (i === parts.length - 1 && parts[i] === '') break;
      var line = document.createElement('span');
      line.className = 'line';
      line.textContent = parts[i];
      var end = parts[i + 1] || '';
      line.setAttribute('data-end', end === '\r\n' ? '\\r\\n' : end === '\r' ? '\\r' : end ? '\\n' : '');
      wire.appendChild(line);
      wire.appendChild(document.createTextNode(end));
      lines += 1;
    }
    wireMeta.textContent = encoder.encode(frame).length + ' bytes in ' + lines +
      ' lines (the empty last line ends the event), received ' + button.getAttribute('data-time') + '.';
  }

  function addFrame(frame) {
    var event = shared.parseFrame(frame);
    frameCount += 1;
    var item = document.createElement('li');
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'frame';
    var time = new Date().toLocaleTimeString();
    button.setAttribute('data-time', time);
    var kind = document.createElement('span');
    kind.className = 'frame-kind';
    kind.textContent = describe(event, frame);
    var size = document.createElement('span');
    size.className = 'frame-size';
    size.textContent = '#' + frameCount + ' · ' + encoder.encode(frame).length + ' B · ' + time;
    button.appendChild(kind);
    button.appendChild(size);
    button.addEventListener('click', function () {
      // A frame picked by hand stays shown while newer ones arrive; picking the newest follows.
      follow = item === framesList.firstChild;
      showFrame(button, frame);
    });
    item.appendChild(button);
    framesList.insertBefore(item, framesList.firstChild);
    while (framesList.children.length > MAX_FRAMES) framesList.removeChild(framesList.lastChild);
    framesEmpty.hidden = true;
    if (follow) showFrame(button, frame);
  }

  function startInspector(topic) {
    iError.textContent = '';
    iTopic.removeAttribute('aria-invalid');
    var problem = shared.topicProblem(topic);
    if (problem) {
      iError.textContent = problem;
      iTopic.setAttribute('aria-invalid', 'true');
      iTopic.focus();
      return;
    }
    if (inspector) {
      inspector.controller.abort();
      inspector = null;
    }
    var current = { controller: new AbortController(), topic: topic };
    inspector = current;
    while (framesList.firstChild) framesList.removeChild(framesList.firstChild);
    while (wire.firstChild) wire.removeChild(wire.firstChild);
    wireMeta.textContent = 'Select a frame to see its bytes.';
    framesEmpty.hidden = false;
    frameCount = 0;
    follow = true;
    iStop.hidden = false;
    setPill(iState, 'connecting', 'connecting');
    fetch('/stream?mode=live&topic=' + encodeURIComponent(topic), {
      headers: Object.assign({ 'Accept': 'text/event-stream' }, headers()),
      signal: current.controller.signal,
      cache: 'no-store'
    }).then(function (response) {
      if (!response.ok) return shared.failure(response).then(function (err) { throw err; });
      setPill(iState, 'open', 'watching ' + topic);
      return shared.readFrames(response, function (frame) {
        if (inspector === current) addFrame(frame);
      });
    }).then(function () {
      if (inspector === current) {
        inspector = null;
        iStop.hidden = true;
        setPill(iState, 'closed', 'ended');
      }
    }, function (err) {
      if (inspector !== current) return; // stopped on purpose
      inspector = null;
      iStop.hidden = true;
      setPill(iState, 'error', 'error');
      iError.textContent = err.status ? 'The stream was refused: ' + err.message + '.'
        : 'The stream failed. Is the server running?';
    });
  }

  return {
    start: startInspector,
    stop: stopInspector,
    topic: function () { return inspector ? inspector.topic : null; }
  };
}
