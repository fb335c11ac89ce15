-- Headless Neovim: :CairnStatus's request and :CairnChat through editors/nvim against
-- `cairn lsp`. Records the status, the chat result, the `$/progress` deltas the plugin
-- received and the chat buffer; writes JSON to $CAIRN_TEST_OUT and quits.

local out_path = assert(os.getenv('CAIRN_TEST_OUT'), 'CAIRN_TEST_OUT')
local timeout_ms = tonumber(os.getenv('CAIRN_TEST_TIMEOUT_MS') or '180000')
local result = { deltas = {}, notifications = {} }
local done = false

local function finish(ok, err)
  if done then
    return
  end
  done = true
  result.ok, result.error = ok, err
  local cairn = require('cairn')
  for _, b in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_get_name(b):match('cairn://chat$') then
      result.chat_buffer = vim.api.nvim_buf_get_lines(b, 0, -1, false)
    end
  end
  result.edits = cairn._edits
  local f = assert(io.open(out_path, 'w'))
  f:write(vim.json.encode(result))
  f:close()
  vim.cmd(ok and 'qall!' or 'cquit! 1')
end

local notify = vim.notify
vim.notify = function(msg, level, opts)
  table.insert(result.notifications, { msg = tostring(msg), level = level })
  return notify(msg, level, opts)
end

vim.defer_fn(function()
  finish(false, 'timed out')
end, timeout_ms)

local started = false
vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(ev)
    local client = vim.lsp.get_client_by_id(ev.data.client_id)
    if started or not client or client.name ~= 'cairn' then
      return
    end
    started = true
    -- Count the deltas as they reach the plugin's $/progress handler.
    local plugin_progress = client.handlers['$/progress']
    client.handlers['$/progress'] = function(err, params, ctx, config)
      if params and type(params.value) == 'table' and params.value.delta then
        table.insert(result.deltas, { token = params.token, delta = params.value.delta })
      end
      return plugin_progress(err, params, ctx, config)
    end
    local cairn = require('cairn')
    cairn.status(function(err, s)
      result.status = s
      result.status_err = err
      cairn.chat('What does the function add in calc.py return?', {
        range = { start = { line = 3, character = 0 }, ['end'] = { line = 6, character = 0 } },
        on_done = function(cerr, res)
          result.chat_err = cerr
          result.chat = res
          vim.schedule(function()
            finish(cerr == nil and res ~= nil, cerr and vim.inspect(cerr) or nil)
          end)
        end,
      })
    end)
  end,
})

require('cairn').setup({ cmd = { assert(os.getenv('CAIRN_BIN'), 'CAIRN_BIN'), 'lsp' } })
